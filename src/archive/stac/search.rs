//! STAC API item search: the POST `/search` body built from the options
//! (with the `stac` crate's `api::Search`), and paging through `next` links
//! with their own method, body and `merge` flag, as the STAC API spec has it.

use std::collections::HashSet;

use serde_json::{Map, Value};
use url::Url;

use super::{RawItem, StacError, StacOptions, fetch, fetch::Fetcher};

/// Items per page when the options do not say.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;

/// True when a catalog is a STAC API root: a `search` link, or an
/// item-search conformance class.
pub(crate) fn is_api_root(root: &Value) -> bool {
    let has_search_link = root
        .get("links")
        .and_then(Value::as_array)
        .is_some_and(|links| {
            links
                .iter()
                .any(|l| l.get("rel").and_then(Value::as_str) == Some("search"))
        });
    let conforms = root
        .get("conformsTo")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .any(|uri| uri.contains("/item-search"))
        });
    has_search_link || conforms
}

/// The result of a search: the items and how many pages were read.
#[derive(Debug)]
pub(crate) struct SearchResult {
    pub items: Vec<RawItem>,
    pub pages: usize,
}

/// Search the API whose root document (`root`, read from `root_url`) is
/// given, with the options; at most `max_items` items.
pub(crate) async fn search(
    fetcher: &Fetcher,
    root_url: &Url,
    root: &Value,
    opts: &StacOptions,
) -> Result<SearchResult, StacError> {
    let shown = fetch::display(root_url);
    let body = search_body(opts, &shown)?;
    let url = search_url(root_url, root, &shown)?;
    let shown_body = Value::Object(body.clone()).to_string();
    tracing::info!(url = %fetch::display(&url), body = %shown_body, "STAC API search");
    let mut request = Request {
        method: reqwest::Method::POST,
        url,
        body: Some(body),
        headers: None,
    };
    let mut items: Vec<RawItem> = Vec::new();
    let mut pages = 0usize;
    let mut seen = HashSet::new();
    loop {
        if !seen.insert(request.key()) {
            return Err(StacError::PagingLoop {
                location: fetch::display(&request.url),
                page: pages,
            });
        }
        let mut page = request.send(fetcher).await?;
        pages += 1;
        items.append(&mut page.items);
        tracing::debug!(page = pages, items = items.len(), "STAC search page read");
        if let Some(max) = opts.max_items
            && items.len() >= max
        {
            items.truncate(max);
            break;
        }
        match page.next {
            Some(next) if !page.was_empty => request = next,
            _ => break,
        }
    }
    Ok(SearchResult { items, pages })
}

/// The POST `/search` body: collections, bbox (lon/lat), datetime (RFC 3339
/// interval), limit, and `query` / `filter` passed through. A search with
/// neither bbox nor datetime is refused: it would list the whole archive.
pub(crate) fn search_body(
    opts: &StacOptions,
    shown: &str,
) -> Result<Map<String, Value>, StacError> {
    if opts.bbox.is_none() && opts.datetime.is_none() {
        return Err(StacError::UnboundedSearch {
            location: shown.to_string(),
        });
    }
    let mut search = ::stac::api::Search::new();
    if let Some(c) = &opts.collections {
        search = search.collections(c.clone());
    }
    if let Some(b) = opts.bbox {
        search = search.bbox(::stac::Bbox::TwoDimensional(check_bbox(b)?));
    }
    if let Some(d) = &opts.datetime {
        search = search.datetime(normalize_datetime(d)?);
    }
    let page = opts
        .page_size
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .min(opts.max_items.unwrap_or(usize::MAX))
        .max(1);
    search = search.limit(page as u64);
    if let Some(q) = &opts.query {
        match q {
            Value::Object(m) => search.items.query = Some(m.clone()),
            other => {
                return Err(StacError::BadOption {
                    key: "query".into(),
                    value: other.to_string(),
                    reason: "the query extension takes a JSON object, e.g. {\"eo:cloud_cover\": {\"lt\": 20}}".into(),
                });
            }
        }
    }
    if let Some(f) = &opts.filter {
        search.items.filter = Some(match f {
            Value::Object(m) => ::stac::api::Filter::Cql2Json(m.clone()),
            Value::String(s) => ::stac::api::Filter::Cql2Text(s.clone()),
            other => {
                return Err(StacError::BadOption {
                    key: "filter".into(),
                    value: other.to_string(),
                    reason: "a CQL2 filter is a JSON object (cql2-json) or a string (cql2-text)"
                        .into(),
                });
            }
        });
    }
    let search = search.valid().map_err(|e| StacError::BadOption {
        key: "bbox".into(),
        value: format!("{:?}", opts.bbox),
        reason: e.to_string(),
    })?;
    match serde_json::to_value(&search) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(StacError::BadOption {
            key: "query".into(),
            value: String::new(),
            reason: "internal: the search body is not a JSON object".into(),
        }),
        Err(e) => Err(StacError::BadOption {
            key: "query".into(),
            value: String::new(),
            reason: format!("cannot write the search body: {e}"),
        }),
    }
}

/// A lon/lat box checked for order and range.
pub(crate) fn check_bbox(b: [f64; 4]) -> Result<[f64; 4], StacError> {
    let [w, s, e, n] = b;
    let bad = |reason: &str| StacError::BadOption {
        key: "bbox".into(),
        value: format!("{w},{s},{e},{n}"),
        reason: format!("{reason}; give min_lon,min_lat,max_lon,max_lat in degrees (WGS 84)"),
    };
    if b.iter().any(|v| !v.is_finite()) {
        return Err(bad("not all numbers are finite"));
    }
    if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
        return Err(bad(
            "longitudes must be within -180..180 (is the box in projected units?)",
        ));
    }
    if !(-90.0..=90.0).contains(&s) || !(-90.0..=90.0).contains(&n) {
        return Err(bad(
            "latitudes must be within -90..90 (is the box in projected units?)",
        ));
    }
    if s > n {
        return Err(bad("min_lat is greater than max_lat"));
    }
    Ok(b)
}

/// A datetime option as an RFC 3339 instant or interval: dates and months
/// become whole days/months (`2023-01-01/2023-06-30` ->
/// `2023-01-01T00:00:00+00:00/2023-06-30T23:59:59+00:00`), open ends stay `..`.
pub(crate) fn normalize_datetime(d: &str) -> Result<String, StacError> {
    let bad = |reason: String| StacError::BadOption {
        key: "datetime".into(),
        value: d.to_string(),
        reason: format!(
            "{reason}; give an RFC 3339 instant or interval, e.g. '2023-01-01/2023-06-30' or '2023-01-01T00:00:00Z/..'"
        ),
    };
    let search = ::stac::api::Search::new()
        .datetime(d.trim())
        .normalize_datetimes()
        .map_err(|e| bad(e.to_string()))?;
    let search = search.valid().map_err(|e| bad(e.to_string()))?;
    search
        .items
        .datetime
        .clone()
        .ok_or_else(|| bad("empty".into()))
}

/// The URL to POST searches to: the root's POST `search` link, else any
/// `search` link, else `<root>/search`.
fn search_url(root_url: &Url, root: &Value, shown: &str) -> Result<Url, StacError> {
    let links: Vec<::stac::Link> = match root.get("links") {
        Some(l) => serde_json::from_value(l.clone()).map_err(|e| StacError::Invalid {
            location: shown.to_string(),
            kind: "API root",
            message: format!("bad 'links': {e}"),
        })?,
        None => Vec::new(),
    };
    let search_links: Vec<&::stac::Link> = links.iter().filter(|l| l.rel == "search").collect();
    let chosen = search_links
        .iter()
        .find(|l| {
            l.method
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("POST"))
        })
        .or_else(|| search_links.first());
    let href = match chosen {
        Some(l) => l.href.clone(),
        None => {
            let path = root_url.path();
            if path.ends_with('/') {
                "search".to_string()
            } else {
                format!("{}/search", path.rsplit('/').next().unwrap_or_default())
            }
        }
    };
    fetch::resolve(&href, root_url).map_err(|e| StacError::Invalid {
        location: shown.to_string(),
        kind: "API root",
        message: format!("bad search link '{href}': {e}"),
    })
}

/// One page request: GET, or POST with a JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: reqwest::Method,
    pub url: Url,
    pub body: Option<Map<String, Value>>,
    pub headers: Option<Map<String, Value>>,
}

impl Request {
    /// A GET of `url`.
    pub(crate) fn get(url: &Url) -> Request {
        Request {
            method: reqwest::Method::GET,
            url: url.clone(),
            body: None,
            headers: None,
        }
    }

    /// What identifies the request, to notice an API repeating a page.
    pub(crate) fn key(&self) -> String {
        let body = self
            .body
            .as_ref()
            .map(|b| Value::Object(b.clone()).to_string())
            .unwrap_or_default();
        format!("{} {} {body}", self.method, self.url)
    }

    /// Send the request and parse the page it answers.
    pub(crate) async fn send(&self, fetcher: &Fetcher) -> Result<Page, StacError> {
        let bytes = if self.method == reqwest::Method::GET && self.headers.is_none() {
            fetcher.get(&self.url).await?
        } else {
            fetcher
                .http(
                    self.method.clone(),
                    &self.url,
                    self.body.as_ref(),
                    self.headers.as_ref(),
                )
                .await?
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| StacError::Malformed {
            location: fetch::display(&self.url),
            line: e.line(),
            column: e.column(),
            message: super::json_message(&e),
        })?;
        Page::parse_for(self, value)
    }

    /// The request a `next` link asks for, after this one: its own method
    /// (GET when not given) and href; for POST its body, merged into this
    /// request's body when `merge` is true, this request's body when absent.
    fn follow(&self, link: &::stac::Link) -> Result<Request, url::ParseError> {
        let url = fetch::resolve(&link.href, &self.url)?;
        let method = match link.method.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("POST") => reqwest::Method::POST,
            _ => reqwest::Method::GET,
        };
        let body = if method == reqwest::Method::POST {
            match (&link.body, link.merge.unwrap_or(false)) {
                (Some(b), true) => {
                    let mut merged = self.body.clone().unwrap_or_default();
                    merged.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Some(merged)
                }
                (Some(b), false) => Some(b.clone()),
                (None, _) => self.body.clone(),
            }
        } else {
            None
        };
        Ok(Request {
            method,
            url,
            body,
            headers: link.headers.clone(),
        })
    }
}

/// One page of items and the request for the next page.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<RawItem>,
    pub next: Option<Request>,
    /// The page had no items (some APIs keep a `next` link on an empty last page).
    pub was_empty: bool,
}

impl Page {
    /// A page read with a GET of `url`.
    pub(crate) fn parse(url: &Url, value: Value) -> Result<Page, StacError> {
        Page::parse_for(&Request::get(url), value)
    }

    /// The page `request` answered with `value`.
    pub(crate) fn parse_for(request: &Request, value: Value) -> Result<Page, StacError> {
        let shown = fetch::display(&request.url);
        if super::doc_type(&value) != "FeatureCollection" {
            return Err(StacError::Invalid {
                location: shown,
                kind: "item collection (search page)",
                message: format!("it has {}", super::describe_type(super::doc_type(&value))),
            });
        }
        let features = super::features(&value, &shown)?;
        let was_empty = features.is_empty();
        let items = features
            .into_iter()
            .map(|f| super::parse_item(f, &request.url, &shown, true))
            .collect::<Result<Vec<_>, _>>()?;
        let links = super::links_of(&value, &shown, "item collection")?;
        let next = match links.iter().find(|l| l.rel == "next") {
            Some(link) => Some(request.follow(link).map_err(|e| StacError::Invalid {
                location: shown.clone(),
                kind: "item collection",
                message: format!("bad 'next' link '{}': {e}", link.href),
            })?),
            None => None,
        };
        Ok(Page {
            items,
            next,
            was_empty,
        })
    }
}
