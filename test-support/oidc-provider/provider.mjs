// Throwaway OpenID Provider for integration tests (oidc-provider 9.13.x; runs on Node 20.19+, warns below Node 22).
// Listens on 127.0.0.1 only. PORT=0 (default) picks a free port; the first stdout line is
//   READY http://127.0.0.1:<port>
// Env: PORT, AT_TTL (access-token lifetime, seconds, default 3600),
//      RP_REDIRECT_URIS (comma-separated extra redirect URIs for registry-ui, e.g. a test RP on its own free port).
// Every HTTP request is logged on stdout as `REQ <METHOD> <path>` (no query, no body), so that
// tests can count the calls a client makes.
import * as http from 'node:http';
import * as crypto from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const PORT = Number(process.env.PORT ?? 0);
const AT_TTL = Number(process.env.AT_TTL ?? 3600);
const RP_REDIRECT_URIS = (process.env.RP_REDIRECT_URIS ?? '').split(',').filter(Boolean);

// ---- test users (plain-text passwords: this is a test peer) ----
const USERS = {
  alice: { password: 'alicepw', name: 'Alice Liddell', email: 'alice@example.org', groups: ['dev', 'ops'] },
  bob: { password: 'bobpw', name: 'Bob Builder', email: 'bob@example.org', groups: ['dev'] },
  carol: { password: 'carolpw', name: 'Carol NoGroups', email: 'carol@example.org', groups: [] },
};

// Resource servers (RFC 8707 resource indicators) => token format per audience.
const RESOURCE_SERVERS = {
  'urn:example:registry': { scope: 'pull push', audience: 'urn:example:registry', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } },
  'urn:example:registry-opaque': { scope: 'pull push', audience: 'urn:example:registry-opaque', accessTokenFormat: 'opaque' },
};

// listen first so the issuer can carry the real port
const server = http.createServer();
await new Promise((resolve) => server.listen(PORT, '127.0.0.1', resolve));
const ISSUER = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const configuration = {
  jwks: { keys: [jwk] },
  cookies: { keys: ['test-cookie-secret-1'] },
  clients: [
    {
      // the "web login" / RP client: authorization_code (+PKCE), refresh, client_credentials, custom password grant
      client_id: 'registry-ui',
      client_secret: 'registry-ui-secret',
      redirect_uris: [`${ISSUER}/cb`, ...RP_REDIRECT_URIS],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'password'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // the resource server (our registry token service) that calls /token/introspection
      client_id: 'registry',
      client_secret: 'registry-secret',
      redirect_uris: [],
      response_types: [],
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  // OP scopes only; 'pull'/'push' are resource-server scopes (see RESOURCE_SERVERS), never list them here
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  responseTypes: ['code'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // put scope-requested claims (e.g. groups) into the id_token as well
  async findAccount(ctx, sub) {
    const u = USERS[sub];
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: u.name, preferred_username: sub, email: u.email, email_verified: true, groups: u.groups };
      },
    };
  },
  // claims added to access tokens: visible in the introspection response and in JWT access tokens
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'AccessToken' && token.accountId && USERS[token.accountId]) {
      return { username: token.accountId, groups: USERS[token.accountId].groups };
    }
    return undefined;
  },
  features: {
    devInteractions: { enabled: false },
    introspection: {
      enabled: true,
      // the resource server may introspect any token; other clients only their own
      allowedPolicy: async (ctx, client, token) => client.clientId === 'registry' || token.clientId === client.clientId,
    },
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined, // no resource param => opaque token usable at userinfo
      useGrantedResource: async () => false,
      async getResourceServerInfo(ctx, resourceIndicator) {
        const rs = RESOURCE_SERVERS[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget();
        return { ...rs, accessTokenTTL: AT_TTL };
      },
    },
  },
  pkce: { required: () => false }, // PKCE optional for confidential clients, S256 verified when sent
  ttl: {
    AccessToken: () => AT_TTL,
    ClientCredentials: () => AT_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 600,
    Session: 3600,
    Grant: 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // skip the consent prompt: auto-grant everything the first-party client asks for
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const g = await ctx.oidc.provider.Grant.find(grantId);
      if (g) return g;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email groups offline_access');
    grant.addOIDCClaims(['name', 'preferred_username', 'email', 'email_verified', 'groups']);
    for (const rs of Object.keys(RESOURCE_SERVERS)) grant.addResourceScope(rs, RESOURCE_SERVERS[rs].scope);
    await grant.save();
    return grant;
  },
};

const provider = new Provider(ISSUER, configuration);

// ---- non-standard "password" grant (ROPC) for scripted tests; oidc-provider has none built in ----
provider.registerGrantType('password', async (ctx) => {
  const { username, password } = ctx.oidc.params;
  const u = USERS[username];
  if (!u || !password || u.password !== password) {
    throw new errors.InvalidGrant('invalid username or password');
  }
  const client = ctx.oidc.client;
  const requested = new Set(String(ctx.oidc.params.scope || 'openid').split(' '));
  const grant = new provider.Grant({ accountId: username, clientId: client.clientId });
  const oidcScope = [...requested].filter((s) => ['openid', 'profile', 'email', 'groups'].includes(s)).join(' ');
  if (oidcScope) grant.addOIDCScope(oidcScope);
  const at = new provider.AccessToken({ accountId: username, client, grantId: await grant.save(), gty: 'password', scope: oidcScope || undefined });
  const resource = ctx.oidc.params.resource;
  if (resource) {
    const info = await configuration.features.resourceIndicators.getResourceServerInfo(ctx, resource, client);
    at.resourceServer = new provider.ResourceServer(resource, info);
    at.scope = [...requested].filter((s) => info.scope.split(' ').includes(s)).join(' ') || undefined;
  }
  ctx.oidc.entity('AccessToken', at);
  const value = await at.save();
  ctx.body = { access_token: value, token_type: 'Bearer', expires_in: at.expiration, scope: at.scope };
}, ['username', 'password', 'scope', 'resource']);

// ---- minimal login UI: GET shows a form, POST checks the password (no consent page) ----
function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { data += c; if (data.length > 65536) reject(new Error('body too large')); });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
    req.on('error', reject);
  });
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction uid mismatch');
  if (req.method === 'GET' && !action && details.prompt.name === 'consent') {
    // fallback auto-consent (normally loadExistingGrant above already covers everything)
    const { prompt: { details: d }, params, session, grantId } = details;
    const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [ind, sc] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(ind, sc.join(' '));
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'GET' && !action) {
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><title>Sign-in</title><form method="post" action="/interaction/${esc(uid)}/login">
<input name="username" autofocus><input name="password" type="password"><button>Sign in</button></form>
<!-- prompt=${esc(details.prompt.name)} client=${esc(details.params.client_id)} -->`);
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const { username, password } = await readForm(req);
    const u = USERS[username];
    if (!u || u.password !== password) {
      res.statusCode = 401;
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end('<!doctype html><p>invalid username or password</p>');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'abort') {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
    return;
  }
  res.statusCode = 404;
  res.end();
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, ISSUER);
    console.log(`REQ ${req.method} ${url.pathname}`);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    if (url.pathname === '/cb') { // echo redirect target, handy for curl -L
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify(Object.fromEntries(url.searchParams)));
    }
    return callback(req, res);
  } catch (err) {
    console.error(err);
    res.statusCode = 400;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ error: 'interaction_error', error_description: String(err.message) }));
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
console.log(`READY ${ISSUER}`);
