//! One compiled ACL entry: validation at load, matching per request.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::pattern::{Pattern, RegexCache};
use super::placeholder::{
    CaptureVar, Field, Var, Vars, find_captures, quote_meta, unknown_placeholders,
};
use super::{AclEntry, MatchConditions};
use crate::authz::AuthzRequest;
use crate::error::ConfigError;
use crate::identity::Labels;

/// The most label combinations tried for one pattern (docker_auth has no limit; the
/// cartesian product of a user's label values could otherwise cost millions of matches).
pub(crate) const MAX_LABEL_COMBINATIONS: usize = 10_000;

/// What the entry grants.
#[derive(Debug)]
pub(crate) enum Actions {
    /// `["*"]`: every requested action.
    All,
    /// Requested ∩ these (sorted, unique; empty = explicit deny).
    Listed(Vec<String>),
}

#[derive(Debug)]
pub(crate) struct CompiledEntry {
    /// `[account, type, name, service]` patterns.
    fields: [Option<Pattern>; 4],
    ip: Option<IpNet>,
    labels: Vec<(String, Pattern)>,
    captures: Vec<CaptureVar>,
    /// Some pattern needs per-request substitution.
    templated: bool,
    /// For each untemplated regex field, its slot in the per-request memo (see
    /// [`share_regex_results`]).
    memo: [Option<usize>; 4],
    pub(crate) actions: Actions,
    pub(crate) comment: Option<String>,
    pub(crate) expiration: Option<std::time::Duration>,
}

fn config_err(message: String, field: &str, index: usize) -> ConfigError {
    ConfigError::new(message)
        .at(field)
        .at("match")
        .at(format!("[{index}]"))
        .at("acl")
}

impl CompiledEntry {
    pub(crate) fn compile(index: usize, entry: AclEntry) -> Result<Self, ConfigError> {
        let AclEntry {
            match_: m,
            actions,
            comment,
            expiration,
        } = entry;
        if expiration.is_some_and(|e| e.as_secs() == 0) {
            return Err(ConfigError::new("must be at least 1 s")
                .at("expiration")
                .at(format!("[{index}]"))
                .at("acl"));
        }
        let MatchConditions {
            account,
            resource_type,
            name,
            service,
            ip,
            labels,
        } = m;
        let mut fields: [Option<Pattern>; 4] = [None, None, None, None];
        for ((slot, raw), field) in fields
            .iter_mut()
            .zip([account, resource_type, name, service])
            .zip(Field::ALL)
        {
            if let Some(raw) = raw {
                let p = Pattern::compile(&raw).map_err(|e| config_err(e, field.key(), index))?;
                warn_unknown(index, field.key(), &raw);
                *slot = Some(p);
            }
        }
        let mut label_conditions = Vec::new();
        for (key, raw) in labels.unwrap_or_default() {
            let p = Pattern::compile(&raw).map_err(|e| {
                ConfigError::new(e)
                    .at(key.as_str())
                    .at("labels")
                    .at("match")
                    .at(format!("[{index}]"))
                    .at("acl")
            })?;
            warn_unknown(index, "labels", &raw);
            label_conditions.push((key, p));
        }
        let ip = ip
            .map(|s| {
                parse_ip_rule(&s).map_err(|e| {
                    config_err(
                        format!("invalid IP address or CIDR {s:?}: {e}"),
                        "ip",
                        index,
                    )
                })
            })
            .transpose()?;
        let actions = match actions {
            None => {
                return Err(ConfigError::new(
                    "missing; list the granted actions: [\"*\"] for all requested, [] to deny",
                )
                .at("actions")
                .at(format!("[{index}]"))
                .at("acl"));
            }
            Some(a) if a.len() == 1 && a.first().is_some_and(|x| x == "*") => Actions::All,
            Some(mut a) => {
                a.sort();
                a.dedup();
                Actions::Listed(a)
            }
        };
        let captures = resolve_captures(index, &fields);
        for (key, p) in &label_conditions {
            for (text, _, _) in find_captures(p.raw()) {
                if !captures.iter().any(|c| c.text == text) {
                    tracing::warn!(
                        rule = index,
                        label = key.as_str(),
                        placeholder = text,
                        "a capture placeholder in a label condition is substituted only when it \
                         also appears in account/type/name/service; it stays literal"
                    );
                }
            }
        }
        let templated = fields.iter().flatten().any(Pattern::is_templated)
            || label_conditions.iter().any(|(_, p)| p.is_templated());
        Ok(Self {
            fields,
            ip,
            labels: label_conditions,
            captures,
            templated,
            memo: [None; 4],
            actions,
            comment,
            expiration,
        })
    }

    /// Whether the clause reads the client address.
    pub(crate) fn uses_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// Whether the clause reads the identity's labels (a label condition or placeholder).
    pub(crate) fn uses_labels(&self) -> bool {
        !self.labels.is_empty()
            || self
                .fields
                .iter()
                .flatten()
                .any(Pattern::is_label_templated)
    }

    /// Whether the entry's clause matches the request.
    pub(crate) fn matches(&self, ctx: &RequestCtx<'_>, cache: &RegexCache) -> bool {
        if let Some(net) = &self.ip {
            match ctx.req.client_ip {
                Some(ip) if net.contains(&ip.to_canonical()) => {}
                _ => return false,
            }
        }
        // Cheap, precompiled checks first; a regex several rules share runs once per request.
        for ((p, v), slot) in self.fields.iter().zip(ctx.values).zip(self.memo) {
            if let Some(p) = p
                && !p.is_templated()
                && !ctx.memoized(slot, || p.matches_plain(v))
            {
                return false;
            }
        }
        let labels = &ctx.req.identity.labels;
        // a label condition needs the label to have a value: check before substituting
        if self
            .labels
            .iter()
            .any(|(key, _)| labels.get(key).is_none_or(Vec::is_empty))
        {
            return false;
        }
        if !self.templated && self.labels.is_empty() {
            return true;
        }
        let with_captures;
        let vars: &[Var<'_>] = if self.captures.is_empty() {
            ctx.base()
        } else {
            with_captures = self.with_captures(ctx);
            &with_captures
        };
        for (p, v) in self.fields.iter().zip(ctx.values) {
            if let Some(p) = p
                && p.is_templated()
                && !matches_with_labels(p, v, vars, labels, cache)
            {
                return false;
            }
        }
        self.labels.iter().all(|(key, p)| {
            labels.get(key).is_some_and(|vals| {
                vals.iter()
                    .any(|lv| p.matches_with(lv, Vars::new(vars), cache))
            })
        })
    }

    /// The request values followed by this entry's capture groups (Go's order).
    fn with_captures<'s>(&'s self, ctx: &'s RequestCtx<'_>) -> Vec<Var<'s>> {
        let mut vars: Vec<Var<'s>> = ctx.base().to_vec();
        for c in &self.captures {
            let input = ctx
                .values
                .get(c.field as usize)
                .copied()
                .unwrap_or_default();
            if let Some(text) = c.value(input) {
                vars.push((Cow::Borrowed(c.text.as_str()), Cow::Borrowed(text)));
            }
        }
        vars
    }
}

/// Gives the same slot to every untemplated regex that appears in the same field of several
/// entries (ACLs repeat `account: "/.+/"` in most rules), so that it runs once per request;
/// returns the number of slots.
pub(crate) fn share_regex_results(entries: &mut [CompiledEntry]) -> usize {
    let mut slots: HashMap<(usize, String), usize> = HashMap::new();
    for e in entries {
        for (i, p) in e.fields.iter().enumerate() {
            if let Some(p) = p
                && p.regex().is_some()
                && !p.is_templated()
            {
                let next = slots.len();
                e.memo[i] = Some(*slots.entry((i, p.raw().to_owned())).or_insert(next));
            }
        }
    }
    slots.len()
}

/// What every entry needs from one request, computed at most once per evaluation.
pub(crate) struct RequestCtx<'a> {
    req: AuthzRequest<'a>,
    /// `[account, type, name, service]`.
    values: [&'a str; 4],
    /// `${account}` … `${service}` with their regex-quoted values.
    base: OnceCell<Vec<Var<'a>>>,
    /// Results of shared regexes, set when first needed.
    memo: Vec<OnceCell<bool>>,
}

impl<'a> RequestCtx<'a> {
    pub(crate) fn new(req: &AuthzRequest<'a>, memo_slots: usize) -> Self {
        let values = [
            req.identity.account.as_str(),
            req.scope.resource_type(),
            req.scope.name(),
            req.service,
        ];
        Self {
            req: *req,
            values,
            base: OnceCell::new(),
            memo: vec![OnceCell::new(); memo_slots],
        }
    }

    /// `check()`, run at most once per request for a shared slot.
    fn memoized(&self, slot: Option<usize>, check: impl FnOnce() -> bool) -> bool {
        match slot.and_then(|s| self.memo.get(s)) {
            Some(cell) => *cell.get_or_init(check),
            None => check(),
        }
    }

    fn base(&self) -> &[Var<'a>] {
        self.base.get_or_init(|| {
            Field::ALL
                .iter()
                .zip(self.values)
                .map(|(f, v)| (Cow::Borrowed(f.placeholder()), quote_meta(v)))
                .collect()
        })
    }
}

fn warn_unknown(index: usize, field: &str, raw: &str) {
    for text in unknown_placeholders(raw) {
        tracing::warn!(
            rule = index,
            field,
            placeholder = text,
            "unknown ACL placeholder; it is matched as literal text"
        );
    }
}

/// Resolves `${field:N}` placeholders found in the four string patterns (docker_auth looks
/// only there, but substitutes them in label conditions too).
fn resolve_captures(index: usize, fields: &[Option<Pattern>; 4]) -> Vec<CaptureVar> {
    let mut out = Vec::new();
    for p in fields.iter().flatten() {
        for (text, field, n) in find_captures(p.raw()) {
            let source = field.and_then(|f| fields.get(f as usize)?.as_ref().map(|p| (f, p)));
            let Some((f, re)) = source.and_then(|(f, p)| Some((f, p.regex()?.clone()))) else {
                tracing::warn!(
                    rule = index,
                    placeholder = text,
                    "capture placeholder does not refer to a /regex/ field; it stays literal"
                );
                continue;
            };
            if n < 1 || n >= re.captures_len() {
                tracing::warn!(
                    rule = index,
                    placeholder = text,
                    "capture group index out of range; it stays literal"
                );
                continue;
            }
            out.push(CaptureVar {
                text,
                field: f,
                index: n,
                regex: re,
            });
        }
    }
    out
}

/// docker_auth's `matchStringWithLabelPermutations`: the pattern with the plain variables
/// first, then every combination of the values of the labels it mentions.
fn matches_with_labels(
    p: &Pattern,
    value: &str,
    vars: &[Var<'_>],
    labels: &Labels,
    cache: &RegexCache,
) -> bool {
    if p.matches_with(value, Vars::new(vars), cache) {
        return true;
    }
    if !p.is_label_templated() {
        return false;
    }
    let sets: Vec<(&str, &[String])> = labels
        .iter()
        .filter_map(|(k, vs)| Some((p.label_placeholder(k)?, vs.as_slice())))
        .collect();
    if sets.is_empty() || sets.iter().any(|(_, vs)| vs.is_empty()) {
        return false;
    }
    let total = sets
        .iter()
        .try_fold(1usize, |acc, (_, vs)| acc.checked_mul(vs.len()));
    if total.is_none_or(|t| t > MAX_LABEL_COMBINATIONS) {
        tracing::warn!(
            pattern = p.raw(),
            limit = MAX_LABEL_COMBINATIONS,
            "too many label combinations for an ACL pattern; treated as no match"
        );
        return false;
    }
    let mut extra: Vec<Var<'_>> = sets
        .iter()
        .map(|(k, _)| (Cow::Borrowed(*k), Cow::Borrowed("")))
        .collect();
    // An odometer over the value lists.
    let mut idx = vec![0usize; sets.len()];
    loop {
        for (slot, ((_, vs), &i)) in extra.iter_mut().zip(sets.iter().zip(&idx)) {
            slot.1 = Cow::Borrowed(vs.get(i).map_or("", String::as_str));
        }
        if p.matches_with(
            value,
            Vars {
                base: vars,
                extra: &extra,
            },
            cache,
        ) {
            return true;
        }
        let mut d = 0;
        loop {
            let (Some(i), Some((_, vs))) = (idx.get_mut(d), sets.get(d)) else {
                return false;
            };
            *i += 1;
            if *i < vs.len() {
                break;
            }
            *i = 0;
            d += 1;
        }
    }
}

/// A single IP (host prefix) or a CIDR (host bits masked). IPv4-mapped IPv6 rules become
/// IPv4 rules, so that they match IPv4 clients as in Go.
fn parse_ip_rule(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net = s.parse::<IpNet>().map_err(|e| e.to_string())?.trunc();
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
    {
        return Ipv4Net::new(v4, v6.prefix_len() - 96)
            .map(IpNet::V4)
            .map_err(|e| e.to_string());
    }
    Ok(net)
}
