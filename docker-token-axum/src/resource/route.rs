//! The distribution route table: which `/v2/` request needs which access.

use http::Method;

/// The longest repository name the reference grammar allows (distribution's
/// `NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;

/// A request path of the registry API (`/v2/…`), parsed as distribution's router does.
///
/// Repository names may contain `/` (`library/alpine`, `team/app/api`): the route is
/// recognised from the end of the path (`…/manifests/<ref>`, `…/blobs/<digest>`,
/// `…/blobs/uploads/[<id>]`, `…/tags/list`, `…/referrers/<digest>`) and the rest is the name.
/// Every part is checked against the grammar (names, tags, digests, upload ids), so a value
/// taken from a parsed route is safe to use as a map key or in a log line.
///
/// ```
/// use docker_token_axum::resource::RegistryRoute;
///
/// let route = RegistryRoute::parse("/v2/team/app/manifests/v1").unwrap().unwrap();
/// assert_eq!(route, RegistryRoute::Manifest { name: "team/app".into(), reference: "v1".into() });
/// assert_eq!(RegistryRoute::parse("/v2/"), Some(Ok(RegistryRoute::Base)));
/// assert_eq!(RegistryRoute::parse("/healthz"), None); // not the registry API
/// assert!(RegistryRoute::parse("/v2/Upper/tags/list").unwrap().is_err()); // no such route
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryRoute {
    /// `/v2/`: the API version check (needs a valid token, no access).
    Base,
    /// `/v2/_catalog`: the repository list (needs `registry:catalog:*`).
    Catalog,
    /// `/v2/<name>/manifests/<reference>` (a tag or a digest).
    Manifest {
        /// The repository.
        name: String,
        /// A tag or a digest.
        reference: String,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// The repository.
        name: String,
        /// The blob's digest.
        digest: String,
    },
    /// `/v2/<name>/blobs/uploads/` (start) or `/v2/<name>/blobs/uploads/<id>` (continue).
    Upload {
        /// The repository.
        name: String,
        /// The upload session id; `None` when starting an upload.
        id: Option<String>,
    },
    /// `/v2/<name>/tags/list`.
    Tags {
        /// The repository.
        name: String,
    },
    /// `/v2/<name>/referrers/<digest>` (OCI distribution 1.1).
    Referrers {
        /// The repository.
        name: String,
        /// The subject's digest.
        digest: String,
    },
}

/// Why a `/v2/…` path is not a registry route (answered 404 without a challenge, as
/// distribution does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The path has a route's shape but the repository name breaks the reference grammar.
    #[error("invalid repository name")]
    NameInvalid,
    /// Nothing in the route table matches.
    #[error("no such registry route")]
    NotFound,
}

/// One access record a request needs: an action on a resource, as distribution's
/// `auth.Access`. The 401 body lists them in this form (`detail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    /// `repository` or `registry`.
    pub resource_type: &'static str,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete` or `*`.
    pub action: &'static str,
}

impl AccessRecord {
    fn new(resource_type: &'static str, name: &str, action: &'static str) -> Self {
        Self {
            resource_type,
            name: name.to_owned(),
            action,
        }
    }
}

impl RegistryRoute {
    /// Parses a request path. `None` when the path is not under `/v2` at all; an error when
    /// it is, but matches no route.
    #[must_use]
    pub fn parse(path: &str) -> Option<Result<Self, RouteError>> {
        let rest = match path.strip_prefix("/v2") {
            Some("") => return Some(Ok(Self::Base)),
            Some(rest) => rest.strip_prefix('/')?,
            None => return None,
        };
        Some(Self::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<Self, RouteError> {
        match rest {
            "" => return Ok(Self::Base),
            "_catalog" => return Ok(Self::Catalog),
            _ => {}
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name_of = |k: usize| -> Result<String, RouteError> {
            let name = segments[..n - k].join("/");
            if is_repository_name(&name) {
                Ok(name)
            } else {
                Err(RouteError::NameInvalid)
            }
        };
        if n >= 4 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let id = segments[n - 1];
            let id = match id {
                "" => None,
                id if is_upload_id(id) => Some(id.to_owned()),
                _ => return Err(RouteError::NotFound),
            };
            return Ok(Self::Upload {
                name: name_of(3)?,
                id,
            });
        }
        if n < 3 {
            return Err(RouteError::NotFound);
        }
        let (kind, last) = (segments[n - 2], segments[n - 1]);
        match (kind, last) {
            ("tags", "list") => Ok(Self::Tags { name: name_of(2)? }),
            ("manifests", r) if is_tag(r) || is_digest(r) => Ok(Self::Manifest {
                name: name_of(2)?,
                reference: r.to_owned(),
            }),
            ("blobs", d) if is_digest(d) => Ok(Self::Blob {
                name: name_of(2)?,
                digest: d.to_owned(),
            }),
            ("referrers", d) if is_digest(d) => Ok(Self::Referrers {
                name: name_of(2)?,
                digest: d.to_owned(),
            }),
            _ => Err(RouteError::NotFound),
        }
    }

    /// The repository the route addresses (`None` for `/v2/` and `/v2/_catalog`).
    #[must_use]
    pub fn repository(&self) -> Option<&str> {
        match self {
            Self::Base | Self::Catalog => None,
            Self::Manifest { name, .. }
            | Self::Blob { name, .. }
            | Self::Upload { name, .. }
            | Self::Tags { name }
            | Self::Referrers { name, .. } => Some(name),
        }
    }

    /// The access records a request needs, exactly as distribution 2.8 computes them
    /// (`registry/handlers/app.go`, `authorized` → `appendAccessRecords` /
    /// `appendCatalogAccessRecord`):
    ///
    /// * `/v2/` — none (but a valid token);
    /// * `/v2/_catalog` — `registry:catalog:*`, whatever the method;
    /// * `GET`/`HEAD` — `pull`; `POST`/`PUT`/`PATCH` — `pull` and `push`; `DELETE` —
    ///   `delete` (distribution asks for the action `delete`, not `*`; clients such as
    ///   skopeo request `*` and the token server grants what the ACL allows); any other
    ///   method — none;
    /// * a non-empty `from` (cross-repository blob mount, first value) — also `pull` on that
    ///   repository, for any method.
    ///
    /// ```
    /// use docker_token_axum::resource::RegistryRoute;
    /// use http::Method;
    ///
    /// let route = RegistryRoute::parse("/v2/app/blobs/uploads/").unwrap().unwrap();
    /// let needed = route.required_access(&Method::POST, Some("base/img"));
    /// let text: Vec<String> = needed
    ///     .iter()
    ///     .map(|r| format!("{}:{}:{}", r.resource_type, r.name, r.action))
    ///     .collect();
    /// assert_eq!(text, ["repository:app:pull", "repository:app:push", "repository:base/img:pull"]);
    /// ```
    #[must_use]
    pub fn required_access(&self, method: &Method, from: Option<&str>) -> Vec<AccessRecord> {
        let mut records = Vec::new();
        match self {
            Self::Base => {}
            Self::Catalog => records.push(AccessRecord::new("registry", "catalog", "*")),
            _ => {
                let name = self.repository().unwrap_or_default();
                append_access(&mut records, method, name);
                if let Some(from) = from.filter(|f| !f.is_empty()) {
                    append_access(&mut records, &Method::GET, from);
                }
            }
        }
        records
    }
}

fn append_access(records: &mut Vec<AccessRecord>, method: &Method, name: &str) {
    let actions: &[&'static str] = match *method {
        Method::GET | Method::HEAD => &["pull"],
        Method::POST | Method::PUT | Method::PATCH => &["pull", "push"],
        Method::DELETE => &["delete"],
        _ => &[],
    };
    records.extend(
        actions
            .iter()
            .map(|a| AccessRecord::new("repository", name, a)),
    );
}

/// Whether `name` is a repository name of the reference grammar (distribution 2.8
/// `reference/regexp.go`): path components of lower-case letters and digits joined by `.`,
/// `_`, `__` or runs of `-`, separated by `/`, optionally behind a `host[:port]` component;
/// at most 255 characters.
///
/// ```
/// use docker_token_axum::resource::is_repository_name;
///
/// assert!(is_repository_name("library/alpine"));
/// assert!(is_repository_name("myhost:5000/team/app"));
/// assert!(!is_repository_name("../etc"));
/// assert!(!is_repository_name("Upper"));
/// ```
#[must_use]
pub fn is_repository_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if !rest.iter().all(|c| is_path_component(c)) {
        return false;
    }
    is_path_component(first) || (!rest.is_empty() && is_domain(first))
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host(.host)*(:port)?`, host = `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()))
    {
        return false;
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    })
}

/// Whether `tag` matches the tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[must_use]
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Whether `digest` matches the digest grammar `algorithm:hex` (distribution's
/// `DigestRegexp`: an algorithm of letters and digits, optionally with `-_+.` separators,
/// then at least 32 hex digits).
#[must_use]
pub fn is_digest(digest: &str) -> bool {
    let Some((alg, hex)) = digest.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    alg_ok && hex.len() >= 32 && hex.len() <= 1024 && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

/// Upload ids: `[a-zA-Z0-9-_.=]+` as in distribution's route table (at most 256 bytes).
fn is_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'-' | b'_' | b'.' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Result<RegistryRoute, RouteError> {
        RegistryRoute::parse(path).expect("a /v2 path")
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn route_table() {
        assert_eq!(route("/v2"), Ok(RegistryRoute::Base));
        assert_eq!(route("/v2/"), Ok(RegistryRoute::Base));
        assert_eq!(route("/v2/_catalog"), Ok(RegistryRoute::Catalog));
        assert_eq!(
            route("/v2/a/b/c/tags/list"),
            Ok(RegistryRoute::Tags {
                name: "a/b/c".into()
            })
        );
        assert_eq!(
            route(&format!("/v2/x/blobs/{D}")),
            Ok(RegistryRoute::Blob {
                name: "x".into(),
                digest: D.into()
            })
        );
        assert_eq!(
            route("/v2/x/y/blobs/uploads/"),
            Ok(RegistryRoute::Upload {
                name: "x/y".into(),
                id: None
            })
        );
        assert_eq!(
            route("/v2/x/blobs/uploads/abc-1="),
            Ok(RegistryRoute::Upload {
                name: "x".into(),
                id: Some("abc-1=".into())
            })
        );
        assert_eq!(
            route(&format!("/v2/host:5000/x/referrers/{D}")),
            Ok(RegistryRoute::Referrers {
                name: "host:5000/x".into(),
                digest: D.into()
            })
        );
        // a repository may itself be called "manifests" or "blobs"
        assert_eq!(
            route("/v2/manifests/manifests/latest"),
            Ok(RegistryRoute::Manifest {
                name: "manifests".into(),
                reference: "latest".into()
            })
        );
        assert_eq!(RegistryRoute::parse("/v2x"), None);
        assert_eq!(RegistryRoute::parse("/other/v2/"), None);
    }

    #[test]
    fn hostile_paths_are_no_route() {
        for p in [
            "/v2/../etc/tags/list",
            "/v2/a/../b/tags/list",
            "/v2//tags/list",
            "/v2/a//b/tags/list",
            "/v2/A/tags/list",
            "/v2/a%2fb/tags/list",
            "/v2/a/manifests/",
            "/v2/a/manifests/-x",
            "/v2/a/manifests/../../x",
            "/v2/a/blobs/sha256:xyz",
            "/v2/a/blobs/uploads/a/b",
            "/v2/a/blobs/uploads/..%2f",
            "/v2/tags/list",
            "/v2/a/unknown/x",
            "/v2/_catalog/x",
        ] {
            assert!(route(p).is_err(), "{p} parsed as {:?}", route(p));
        }
        let long = format!("/v2/{}/tags/list", "a".repeat(256));
        assert_eq!(route(&long), Err(RouteError::NameInvalid));
        let max = format!("/v2/{}/tags/list", "a".repeat(255));
        assert!(route(&max).is_ok());
    }

    #[test]
    fn names() {
        for ok in [
            "a",
            "a/b",
            "a-b--c",
            "a_b",
            "a__b",
            "a.b",
            "localhost:5000/a",
            "Host.Example/a",
        ] {
            assert!(is_repository_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a/",
            "/a",
            "a___b",
            "a._b",
            "-a",
            "a-",
            "A",
            "host:/a",
            "host:x/a",
            "a b",
            "a/B",
            "host:5000",
        ] {
            assert!(!is_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn access_per_method() {
        let r = route("/v2/a/manifests/v1").unwrap();
        let acts = |m: Method, from: Option<&str>| -> Vec<String> {
            r.required_access(&m, from)
                .into_iter()
                .map(|a| format!("{}:{}:{}", a.resource_type, a.name, a.action))
                .collect()
        };
        assert_eq!(acts(Method::GET, None), ["repository:a:pull"]);
        assert_eq!(acts(Method::HEAD, None), ["repository:a:pull"]);
        assert_eq!(
            acts(Method::PUT, None),
            ["repository:a:pull", "repository:a:push"]
        );
        assert_eq!(acts(Method::DELETE, None), ["repository:a:delete"]);
        assert!(acts(Method::OPTIONS, None).is_empty());
        assert_eq!(
            acts(Method::GET, Some("b")),
            ["repository:a:pull", "repository:b:pull"]
        );
        assert_eq!(acts(Method::GET, Some("")), ["repository:a:pull"]);
        let cat = route("/v2/_catalog").unwrap();
        assert_eq!(cat.required_access(&Method::GET, Some("x")).len(), 1);
        assert!(
            route("/v2/")
                .unwrap()
                .required_access(&Method::GET, None)
                .is_empty()
        );
    }

    #[test]
    fn tags_and_digests() {
        assert!(is_tag("v1.0-rc_1"));
        assert!(is_tag(&"a".repeat(128)));
        assert!(!is_tag(&"a".repeat(129)));
        assert!(!is_tag(".x"));
        assert!(!is_tag("a/b"));
        assert!(is_digest(D));
        assert!(is_digest("sha512+b64.x:0123456789abcdef0123456789abcdef"));
        assert!(!is_digest("sha256:0123"));
        assert!(!is_digest(":0123456789abcdef0123456789abcdef"));
        assert!(!is_digest("sha256:0123456789abcdef0123456789abcdeg"));
    }
}
