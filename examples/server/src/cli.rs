//! The command line.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use docker_token_core::keys::{Algorithm, SigningKey};
use docker_token_core::scope::parse_scopes;
use docker_token_core::static_users::BCRYPT_MAX_PASSWORD_BYTES;
use docker_token_core::token::rfc3339;
use docker_token_core::{Identity, display_chain};

use crate::admin::{self, Request};
use crate::config::FileConfig;
use crate::serve;

/// A Docker/OCI registry token server (a drop-in for cesanta/docker_auth).
#[derive(Debug, Parser)]
#[command(name = "docker-token-server", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve tokens. Without --config, runs an embedded default for a first try.
    Serve(ServeArgs),
    /// Validate a configuration file (exit 0 when valid, 1 otherwise).
    CheckConfig {
        /// The docker_auth-format YAML file.
        file: PathBuf,
    },
    /// Show what the ACL grants an identity, without authenticating.
    Explain(ExplainArgs),
    /// Print a bcrypt hash of the password read from standard input.
    HashPassword {
        /// bcrypt cost (4–31). Each +1 doubles the cost of every login.
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
    /// List or revoke refresh tokens (`token.refresh`). Through `server.admin_socket` while
    /// the server runs; otherwise the store file is opened directly.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage robot accounts (CI credentials) in the configuration's `store:`.
    Robots {
        #[command(subcommand)]
        command: crate::robots::RobotsCommand,
    },
    /// Generate a signing key and a self-signed certificate (and print how to rotate to it).
    GenKey {
        /// Directory to write `<name>.key` and `<name>.crt` into (must not contain them yet).
        #[arg(long)]
        out_dir: PathBuf,
        /// File name stem: `--name token-2027` writes `token-2027.key`/`.crt`, so that a
        /// new pair can sit next to the one in use.
        #[arg(long, default_value = "token")]
        name: String,
        /// The running configuration: the rotation steps printed then name its key files,
        /// `expiration` and `jwks_max_age`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// ES256 (default), ES384, RS256, RS384 or RS512.
        #[arg(long, default_value = "ES256", value_parser = parse_alg)]
        algorithm: Algorithm,
        /// The certificate's common name.
        #[arg(long, default_value = "docker-token")]
        common_name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// List the live refresh tokens: ids (hashes, never the tokens), accounts, clients, times.
    List {
        /// docker_auth-format YAML configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// Only this account's tokens.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every refresh token of an account, or one by id. Access tokens already handed
    /// out stay valid until they expire (minutes).
    Revoke {
        /// docker_auth-format YAML configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// Every token of this account.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        account: Option<String>,
        /// The token with this id (from `tokens list`).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// docker_auth-format YAML configuration.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Embedded default only: where keys and the admin user live.
    #[arg(long, default_value = "docker-token-data")]
    pub(crate) data_dir: PathBuf,
    /// Embedded default only: the listen address.
    #[arg(long, default_value = "127.0.0.1:5001")]
    pub(crate) addr: String,
}

#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// docker_auth-format YAML configuration.
    #[arg(long)]
    config: PathBuf,
    /// The account ("" is the anonymous user).
    #[arg(long)]
    account: String,
    /// A label, `key=value`; repeat for more values or keys.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// The client IP address.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// The service (the registry's `auth.token.service`).
    #[arg(long, default_value = "")]
    service: String,
    /// A scope, e.g. `repository:foo/bar:pull,push`; repeat for more.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase()))
        .map_err(|_| format!("unknown algorithm {s:?}: use ES256, ES384, RS256, RS384 or RS512"))
}

pub(crate) fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve(ServeArgs {
        config: None,
        data_dir: PathBuf::from("docker-token-data"),
        addr: "127.0.0.1:5001".to_owned(),
    })) {
        Command::Serve(args) => serve::main(args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Explain(args) => explain(&args),
        Command::HashPassword { cost } => hash_password(cost),
        Command::Tokens { command } => tokens(command),
        Command::Robots { command } => crate::robots::run(command),
        Command::GenKey {
            out_dir,
            name,
            config,
            algorithm,
            common_name,
        } => gen_key(&out_dir, &name, config.as_deref(), algorithm, &common_name),
    }
}

fn check_config(file: &Path) -> ExitCode {
    let origin = file.display().to_string();
    let result = FileConfig::read(file)
        .and_then(|c| c.load(&origin))
        .and_then(|loaded| serve::build_service(&loaded).map(|_| ()));
    match result {
        Ok(()) => {
            println!("{origin}: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn explain(args: &ExplainArgs) -> ExitCode {
    let origin = args.config.display().to_string();
    let service = match FileConfig::read(&args.config)
        .and_then(|c| c.load(&origin))
        .and_then(|l| serve::build_service(&l))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let scopes = match parse_scopes(&args.scopes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("invalid scope: {e}");
            return ExitCode::from(2);
        }
    };
    let mut labels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &args.labels {
        let Some((k, v)) = l.split_once('=') else {
            eprintln!("invalid --label {l:?}: expected key=value");
            return ExitCode::from(2);
        };
        labels.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    let identity = Identity::new(args.account.clone()).with_labels(labels);
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let decisions =
        match runtime.block_on(service.explain(&identity, &args.service, args.ip, &scopes)) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}", display_chain(&e));
                return ExitCode::from(2);
            }
        };
    let mut out = std::io::stdout().lock();
    if args.json {
        let scopes: Vec<serde_json::Value> = decisions
            .iter()
            .map(|d| {
                serde_json::json!({
                    "type": d.scope.resource_type(),
                    "name": d.scope.name(),
                    "requested": d.scope.actions(),
                    "granted": d.granted,
                    "rule": d.rule.as_ref().map(|r| serde_json::json!({"index": r.index, "comment": r.comment})),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::json!({ "scopes": scopes }));
    } else {
        for d in &decisions {
            let rule = match &d.rule {
                Some(r) => format!(
                    "acl[{}]{}",
                    r.index,
                    r.comment
                        .as_ref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ),
                None => "no rule matched".to_owned(),
            };
            let granted = if d.granted.is_empty() {
                "nothing".to_owned()
            } else {
                d.granted.join(",")
            };
            let _ = writeln!(out, "{}: granted {granted} by {rule}", d.scope);
        }
    }
    ExitCode::SUCCESS
}

fn tokens(command: TokensCommand) -> ExitCode {
    let (config, request, json) = match command {
        TokensCommand::List {
            config,
            account,
            json,
        } => (config, Request::ListTokens { account }, json),
        TokensCommand::Revoke {
            config,
            account,
            id,
        } => (config, Request::RevokeTokens { account, id }, false),
    };
    let file = match FileConfig::read(&config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    let response = runtime.block_on(async {
        match &file.server.admin_socket {
            Some(socket) => admin::send(socket, &request).await,
            None => {
                let store = admin::open_store(&file)?;
                Ok(admin::execute(Some(store.as_ref()), request).await)
            }
        }
    });
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Some(e) = response.error {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    let mut out = std::io::stdout().lock();
    if let Some(n) = response.revoked {
        let _ = writeln!(out, "revoked {n} refresh token(s)");
    }
    if let Some(tokens) = response.tokens {
        if json {
            let _ = writeln!(out, "{}", serde_json::json!({ "tokens": tokens }));
        } else {
            let _ = writeln!(
                out,
                "{:<22}  {:<20}  {:<16}  {:<16}  {:<20}  {:<20}  expires",
                "id", "account", "service", "client", "issued", "last used"
            );
            for t in &tokens {
                let time =
                    |s: u64| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
                // client-chosen text: escaped
                let _ = writeln!(
                    out,
                    "{:<22}  {:<20}  {:<16}  {:<16}  {:<20}  {:<20}  {}",
                    t.id,
                    format!("{:?}", t.account),
                    format!("{:?}", t.service),
                    format!("{:?}", t.client_id),
                    time(t.created_at),
                    time(t.last_used_at),
                    time(t.expires_at)
                );
            }
        }
    }
    ExitCode::SUCCESS
}

/// A single-threaded runtime for a command; `None` (after saying why) if it cannot start.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("cannot start a runtime: {e}"))
        .ok()
}

fn hash_password(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("cannot read the password from standard input: {e}");
        return ExitCode::from(1);
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("the password is empty");
        return ExitCode::from(1);
    }
    if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
        eprintln!(
            "the password is {} bytes long; bcrypt only uses the first {BCRYPT_MAX_PASSWORD_BYTES} \
             and this server rejects longer passwords at login: choose a shorter one",
            password.len()
        );
        return ExitCode::from(1);
    }
    match bcrypt::hash(password, cost) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash: {e}");
            ExitCode::from(1)
        }
    }
}

fn gen_key(
    out_dir: &Path,
    name: &str,
    config: Option<&Path>,
    algorithm: Algorithm,
    common_name: &str,
) -> ExitCode {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        eprintln!("--name must be a plain file name stem, e.g. token-2027");
        return ExitCode::from(1);
    }
    // The running configuration, read first so that a bad --config writes nothing.
    let running = match config {
        Some(path) => match FileConfig::read(path) {
            Ok(file) => Some(file.token),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let key_path = out_dir.join(format!("{name}.key"));
    let cert_path = out_dir.join(format!("{name}.crt"));
    if key_path.exists() || cert_path.exists() {
        eprintln!(
            "{} already holds {name}.key or {name}.crt; refusing to overwrite",
            out_dir.display()
        );
        return ExitCode::from(1);
    }
    let generated = match SigningKey::generate(algorithm, common_name) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cannot generate a key: {}", display_chain(&e));
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::create_dir_all(out_dir)
        .and_then(|()| {
            crate::quickstart::write_private(&key_path, generated.key_pem.expose().as_bytes())
        })
        .and_then(|()| std::fs::write(&cert_path, generated.certificate_pem.as_bytes()))
    {
        eprintln!("cannot write into {}: {e}", out_dir.display());
        return ExitCode::from(1);
    }
    println!("key:         {}", key_path.display());
    println!(
        "certificate: {}  (the registry's rootcertbundle)",
        cert_path.display()
    );
    println!("algorithm:   {}", generated.key.algorithm().as_str());
    println!(
        "kid libtrust (registry 2.x): {}",
        generated.key.libtrust_kid()
    );
    println!(
        "kid rfc7638  (registry 3.x): {}",
        generated.key.rfc7638_kid()
    );
    print_rotation_steps(&key_path, &cert_path, running.as_ref());
    ExitCode::SUCCESS
}

/// How to switch to a freshly generated pair without invalidating tokens in flight.
fn print_rotation_steps(
    key: &Path,
    cert: &Path,
    running: Option<&docker_token_core::config::TokenConfig>,
) {
    let old_cert = running.and_then(|t| t.certificate.as_ref()).map_or_else(
        || "<the current token.crt>".to_owned(),
        |p| p.display().to_string(),
    );
    let max_age = running
        .map_or(docker_token_core::config::DEFAULT_JWKS_MAX_AGE, |t| {
            t.jwks_max_age
        })
        .as_secs();
    let expiration = running.map_or_else(
        || "token.expiration".to_owned(),
        |t| format!("{} s (token.expiration)", t.expiration.as_secs()),
    );
    println!();
    println!("To rotate to this key without invalidating issued tokens:");
    println!(
        "  1. publish it as verify-only: add {} to token.verify_certificates, append it to every",
        cert.display()
    );
    println!(
        "     registry's rootcertbundle (cat {old_cert} {} > bundle.pem) and restart them; send",
        cert.display()
    );
    println!(
        "     SIGHUP here. JWKS readers (registry 3.x `jwks`, TokenVerifier) see it within {max_age} s."
    );
    println!(
        "  2. make it active: token.key: {}, token.certificate: {};",
        key.display(),
        cert.display()
    );
    println!("     move {old_cert} into token.verify_certificates; SIGHUP.");
    println!(
        "  3. after {expiration} + 60 s of leeway, remove {old_cert} from token.verify_certificates"
    );
    println!("     and from the registries' bundles.");
    println!("  Check each step with `docker-token-server check-config FILE` before SIGHUP.");
}
