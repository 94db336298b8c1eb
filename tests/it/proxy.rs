//! An HTTP proxy on a free loopback port in front of the tests' S3 server:
//! it logs every request (method, path, Range header, status, body bytes
//! sent) so the tests count what sceneql asked for independently of
//! sceneql's own counters, and it can answer a share of the object reads
//! (GETs with a Range header) with a fault: 503 SlowDown, 500, a connection
//! dropped after the headers, a body cut short; or refuse every request
//! with 403; or hold each request a while (a slow store) and count the
//! most requests it answers at once. Each connection runs on a thread of
//! its own; the proxy stops accepting when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fault the proxy answers with instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    SlowDown,
    InternalError,
    /// The response headers, then the connection closes.
    DropAfterHeaders,
    /// Half the body, then the connection closes.
    ShortBody,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The Range header's `(first, last)` byte (inclusive), if any.
    pub range: Option<(u64, u64)>,
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: usize,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct State {
    log: Mutex<Vec<Logged>>,
    /// Every `every`-th object read gets the next fault of `faults`.
    faults: Mutex<(Vec<Fault>, usize)>,
    reads: AtomicUsize,
    forbid: AtomicBool,
    stop: AtomicBool,
    /// Milliseconds each forwarded request waits before it is forwarded.
    delay_ms: AtomicUsize,
    /// Requests being answered now, and the most at once.
    active: AtomicUsize,
    most_active: AtomicUsize,
}

pub struct Proxy {
    pub endpoint: String,
    state: Arc<State>,
}

impl Proxy {
    /// A proxy forwarding to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, up) = (s.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &s));
            }
        });
        Proxy { endpoint, state }
    }

    /// Fault every `every`-th object read, cycling through `faults`.
    pub fn inject(&self, faults: &[Fault], every: usize) {
        *self.state.faults.lock().unwrap() = (faults.to_vec(), every.max(1));
    }

    /// Answer every request with 403 AccessDenied.
    pub fn forbid(&self, on: bool) {
        self.state.forbid.store(on, Ordering::Relaxed);
    }

    /// Hold each request this long before forwarding it (a slow store).
    pub fn delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as usize, Ordering::Relaxed);
    }

    /// The most requests the proxy was answering at once.
    pub fn most_at_once(&self) -> usize {
        self.state.most_active.load(Ordering::Relaxed)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// A request read from a client: its head lines and body.
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let first = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).ok()? == 0 {
            return None;
        }
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some((first, headers))
}

/// Read a body of Content-Length bytes, or a chunked one.
fn read_body(r: &mut impl BufRead, headers: &[(String, String)]) -> Option<Vec<u8>> {
    if header(headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                return Some(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let n: usize = header(headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

fn parse_range(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().unwrap_or(u64::MAX)))
}

fn serve(client: TcpStream, upstream: &str, state: &State) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    loop {
        let Some((line, headers)) = read_head(&mut reader) else {
            return;
        };
        let Some(body) = read_body(&mut reader, &headers) else {
            return;
        };
        let req = Request {
            line,
            headers,
            body,
        };
        let mut parts = req.line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let range = header(&req.headers, "range").and_then(parse_range);
        let mut entry = Logged {
            method: method.clone(),
            path,
            range,
            status: 0,
            bytes: 0,
            fault: None,
        };
        if state.forbid.load(Ordering::Relaxed) {
            let body = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            entry.status = 403;
            respond(&mut client, 403, "Forbidden", body, &mut entry);
            state.log.lock().unwrap().push(entry);
            continue;
        }
        let fault = (method == "GET" && range.is_some())
            .then(|| {
                let n = state.reads.fetch_add(1, Ordering::Relaxed) + 1;
                let (faults, every) = &*state.faults.lock().unwrap();
                (!faults.is_empty() && n.is_multiple_of(*every))
                    .then(|| faults[(n / every) % faults.len()])
            })
            .flatten();
        entry.fault = fault;
        match fault {
            Some(Fault::SlowDown) => {
                let body = b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                respond(&mut client, 503, "Slow Down", body, &mut entry);
                state.log.lock().unwrap().push(entry);
                continue;
            }
            Some(Fault::InternalError) => {
                let body = b"<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";
                respond(&mut client, 500, "Internal Server Error", body, &mut entry);
                state.log.lock().unwrap().push(entry);
                continue;
            }
            _ => {}
        }
        let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
        state.most_active.fetch_max(now, Ordering::SeqCst);
        let delay = state.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay as u64));
        }
        let forwarded = forward(upstream, &req);
        state.active.fetch_sub(1, Ordering::SeqCst);
        let Some((status, reason, headers, body)) = forwarded else {
            return;
        };
        entry.status = status;
        let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
        let is_head = method == "HEAD";
        for (k, v) in &headers {
            // A HEAD answer keeps the object's length.
            let keep_length = is_head && k.eq_ignore_ascii_case("content-length");
            if !keep_length
                && ["content-length", "transfer-encoding", "connection"]
                    .iter()
                    .any(|h| k.eq_ignore_ascii_case(h))
            {
                continue;
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !is_head {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let sent = match fault {
            Some(Fault::DropAfterHeaders) => 0,
            Some(Fault::ShortBody) => body.len() / 2,
            _ => body.len(),
        };
        let ok = client.write_all(head.as_bytes()).is_ok()
            && (method == "HEAD" || client.write_all(&body[..sent]).is_ok());
        entry.bytes = if method == "HEAD" { 0 } else { sent };
        state.log.lock().unwrap().push(entry);
        if !ok || fault.is_some() {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn respond(client: &mut TcpStream, status: u16, reason: &str, body: &[u8], entry: &mut Logged) {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(body);
    entry.bytes = body.len();
}

type Response = (u16, String, Vec<(String, String)>, Vec<u8>);

/// Send the request upstream on a connection of its own and read the
/// whole response.
fn forward(upstream: &str, req: &Request) -> Option<Response> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut head = format!("{}\r\n", req.line);
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("host") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // Signatures cover the Host header: keep the client's.
    if let Some(h) = header(&req.headers, "host") {
        head.push_str(&format!("Host: {h}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(&req.body).ok()?;
    let mut r = BufReader::new(up);
    let (status_line, headers) = read_head(&mut r)?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let method = req.line.split_whitespace().next().unwrap_or_default();
    let body = if method == "HEAD" || status == 204 || status == 304 {
        Vec::new()
    } else if header(&headers, "content-length").is_some()
        || header(&headers, "transfer-encoding").is_some()
    {
        read_body(&mut r, &headers)?
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b).ok()?;
        b
    };
    Some((status, reason, headers, body))
}
