//! The HTML pages of the browser login: the one-time password page and error pages.

use http::{HeaderValue, Response, StatusCode, header};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Quotes a word for a POSIX shell (single quotes).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}\
pre{background:#f4f4f4;padding:.6rem;overflow-x:auto;user-select:all}code{font-size:1rem}";

fn page(status: StatusCode, title: &str, body: &str) -> Response<String> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut r = Response::new(html);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// An error page: what went wrong, and how to start again.
pub(crate) fn error(status: StatusCode, message: &str, start: &str) -> Response<String> {
    page(
        status,
        "Login failed",
        &format!(
            "<p id=\"error\">{}</p><p><a href=\"{}\">Log in again</a></p>",
            esc(message),
            esc(start)
        ),
    )
}

/// A plain message page.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response<String> {
    page(status, title, &format!("<p>{}</p>", esc(text)))
}

/// The one-time page with the docker password and login commands.
pub(crate) fn password(
    user: &str,
    password: &str,
    registry: Option<&str>,
    valid_days: u64,
    sign_out: &str,
) -> Response<String> {
    let reg = registry.unwrap_or("<registry>");
    let (u, p) = (shell_quote(user), shell_quote(password));
    let mut cmds = String::new();
    for tool in ["docker", "podman", "skopeo"] {
        let line =
            format!("printf '%s\\n' {p} | {tool} login --username {u} --password-stdin {reg}");
        cmds.push_str(&format!(
            "<pre><code id=\"{tool}-login\">{}</code></pre>",
            esc(&line)
        ));
    }
    let body = format!(
        "<p>Signed in as <strong id=\"user\">{user_html}</strong>. Your docker password \
         (shown only once, valid for {valid_days} days unless you sign out):</p>\
         <pre><code id=\"password\">{pw}</code></pre>\
         <p>Log in with one of:</p>{cmds}\
         <p>To sign this password out: <code>curl -u {u_html}:PASSWORD -X POST {so}</code></p>",
        user_html = esc(user),
        pw = esc(password),
        u_html = esc(&u),
        so = esc(sign_out),
    );
    page(StatusCode::OK, "Docker registry login", &body)
}

/// A redirect (`302 Found`) with no-store.
pub(crate) fn redirect(location: &str) -> Response<String> {
    let mut r = Response::new(String::new());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_quotes() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let r = password(
            "<al'ice>",
            "pw<",
            Some("reg.example"),
            30,
            "/oidc_auth/sign_out",
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let b = r.body();
        assert!(
            !b.contains("<al'ice>") && b.contains("&lt;al&#39;ice&gt;"),
            "{b}"
        );
        assert!(b.contains("docker login --username") && b.contains("reg.example"));
        assert!(b.contains("podman login") && b.contains("skopeo login"));
    }
}
