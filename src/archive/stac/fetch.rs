//! Reading STAC documents: local files and http(s) (GET and POST with a JSON
//! body), with retries on transient HTTP failures, and the href handling
//! around it (locations as URLs, relative hrefs, locations shown in messages
//! without credentials or query strings).

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::StacError;

/// Attempts per HTTP request (the first try included).
const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled on each further retry.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Reads documents; one HTTP client (and connection pool) per load, built on
/// first use (loading local files needs none).
#[derive(Debug, Default)]
pub(crate) struct Fetcher {
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl Fetcher {
    pub(crate) fn new() -> Self {
        Fetcher::default()
    }

    /// The HTTP client; `shown` names the document for the error.
    fn client(&self, shown: &str) -> Result<&reqwest::Client, StacError> {
        let client = self.client.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("sceneql/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(30))
                .timeout(Duration::from_secs(300))
                .build()
                .map_err(|e| error_chain(&e.without_url()))
        });
        client.as_ref().map_err(|e| StacError::Read {
            location: shown.to_string(),
            message: format!("cannot build an HTTP client: {e}"),
        })
    }

    /// The bytes of the document at `url` (file or http(s)).
    pub(crate) async fn get(&self, url: &Url) -> Result<Vec<u8>, StacError> {
        match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|_| StacError::Read {
                    location: url.to_string(),
                    message: "not a local file path".into(),
                })?;
                tokio::fs::read(&path).await.map_err(|e| StacError::Read {
                    location: path.display().to_string(),
                    message: e.to_string(),
                })
            }
            "http" | "https" => self.http(reqwest::Method::GET, url, None, None).await,
            other => Err(unsupported_scheme(url, other)),
        }
    }

    /// An HTTP request with an optional JSON body and extra headers (from a
    /// STAC link), retried on 429 / 5xx / connection failures.
    pub(crate) async fn http(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Map<String, Value>>,
        headers: Option<&Map<String, Value>>,
    ) -> Result<Vec<u8>, StacError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(unsupported_scheme(url, url.scheme()));
        }
        let shown = display(url);
        let client = self.client(&shown)?;
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let mut request = client.request(method.clone(), url.clone()).header(
                reqwest::header::ACCEPT,
                "application/geo+json, application/json;q=0.9, */*;q=0.1",
            );
            for (name, value) in headers.into_iter().flatten() {
                if let Some(v) = value.as_str() {
                    request = request.header(name.as_str(), v);
                }
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let retry_after;
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        return response.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                            StacError::Read {
                                location: shown.clone(),
                                message: format!(
                                    "reading the response failed: {}",
                                    error_chain(&e.without_url())
                                ),
                            }
                        });
                    }
                    let transient = status.as_u16() == 429 || status.is_server_error();
                    if !transient || attempt >= ATTEMPTS {
                        let text = response.text().await.unwrap_or_default();
                        return Err(http_error(&shown, status.as_u16(), &text, attempt));
                    }
                    retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    tracing::warn!(url = %shown, status = status.as_u16(), attempt, "STAC request failed; retrying");
                }
                Err(e) => {
                    let transient = e.is_connect() || e.is_timeout() || e.is_request();
                    if !transient || attempt >= ATTEMPTS {
                        let tries = if attempt > 1 {
                            format!(" (after {attempt} attempts)")
                        } else {
                            String::new()
                        };
                        return Err(StacError::Read {
                            location: shown,
                            message: format!("{}{tries}", error_chain(&e.without_url())),
                        });
                    }
                    retry_after = None;
                    tracing::warn!(url = %shown, error = %error_chain(&e.without_url()), attempt, "STAC request failed; retrying");
                }
            }
            tokio::time::sleep(retry_after.unwrap_or(wait).max(wait)).await;
            wait *= 2;
            attempt += 1;
        }
    }
}

/// An HTTP error status as a typed error, with the start of the body (APIs
/// explain bad requests there).
fn http_error(shown: &str, status: u16, body: &str, attempts: u32) -> StacError {
    let body = body.trim();
    let mut detail = String::new();
    if !body.is_empty() {
        let cut: String = body.chars().take(300).collect();
        let more = if cut.len() < body.len() { "..." } else { "" };
        detail = format!(": {cut}{more}");
    }
    if attempts > 1 {
        detail.push_str(&format!(" (after {attempts} attempts)"));
    }
    let hint = match status {
        400 | 422 => " and the search options (bbox, datetime, collections, query, filter)",
        401 | 403 => " and whether the API needs credentials (signed URLs are not supported)",
        404 => " (is it the STAC API root, catalog or item you meant?)",
        429 | 500..=599 => ", or try again later: the server is overloaded or failing",
        _ => "",
    };
    StacError::Http {
        location: shown.to_string(),
        status,
        detail,
        hint: hint.to_string(),
    }
}

fn unsupported_scheme(url: &Url, scheme: &str) -> StacError {
    StacError::Read {
        location: display(url),
        message: format!(
            "'{scheme}://' is not supported for STAC documents (local paths, file:// and http(s):// are); use the document's https:// URL"
        ),
    }
}

/// An error and its sources, joined: reqwest's top-level message alone
/// ("error sending request") hides the cause.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A location as a URL: http(s) and file URLs as given, local paths made
/// absolute (against the current directory) as file URLs.
pub(crate) fn location_url(location: &str) -> Result<Url, StacError> {
    let location = location.trim();
    if location.contains("://") {
        let url = Url::parse(location).map_err(|e| StacError::Read {
            location: redact_text(location),
            message: format!("not a valid URL: {e}"),
        })?;
        return match url.scheme() {
            "http" | "https" | "file" => Ok(url),
            other => Err(unsupported_scheme(&url, other)),
        };
    }
    let absolute = std::path::absolute(Path::new(location)).map_err(|e| StacError::Read {
        location: location.to_string(),
        message: e.to_string(),
    })?;
    Url::from_file_path(&absolute).map_err(|_| StacError::Read {
        location: location.to_string(),
        message: "cannot make the path absolute".into(),
    })
}

/// `href` resolved against `base` (a document's URL). Absolute URLs come back
/// as they are, absolute paths become file URLs when the base is a file.
pub(crate) fn resolve(href: &str, base: &Url) -> Result<Url, url::ParseError> {
    match Url::parse(href) {
        Ok(u) => Ok(u),
        Err(url::ParseError::RelativeUrlWithoutBase) => base.join(href),
        Err(e) => Err(e),
    }
}

/// An asset href as sceneql reads it: absolute URLs unchanged (a signed URL
/// must not be re-encoded), file URLs and relative hrefs of local documents as
/// local paths, relative hrefs of remote documents as absolute URLs.
pub(crate) fn absolute_href(href: &str, base: &Url) -> String {
    if let Ok(u) = Url::parse(href) {
        if u.scheme() == "file"
            && let Ok(p) = u.to_file_path()
        {
            return p.display().to_string();
        }
        return href.to_string();
    }
    match base.join(href) {
        Ok(u) if u.scheme() == "file" => match u.to_file_path() {
            Ok(p) => p.display().to_string(),
            Err(()) => u.to_string(),
        },
        Ok(u) => u.to_string(),
        Err(_) => href.to_string(),
    }
}

/// The URL without its fragment (documents are the same with any fragment).
pub(crate) fn without_fragment(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_fragment(None);
    u
}

/// A URL as shown in messages and logs: local paths as paths; remote URLs
/// without user name, password and query string (which may hold tokens or
/// signatures).
pub(crate) fn display(url: &Url) -> String {
    if url.scheme() == "file"
        && let Ok(p) = url.to_file_path()
    {
        return p.display().to_string();
    }
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    let had_query = u.query().is_some_and(|q| !q.is_empty());
    u.set_query(None);
    let mut text = u.to_string();
    if had_query {
        text.push_str("?...");
    }
    text
}

/// [`display`] for text that may not parse as a URL: cut at the query.
fn redact_text(location: &str) -> String {
    match Url::parse(location) {
        Ok(u) => display(&u),
        Err(_) => match location.split_once('?') {
            Some((head, _)) => format!("{head}?..."),
            None => location.to_string(),
        },
    }
}
