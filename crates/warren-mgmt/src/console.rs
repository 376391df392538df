//! The web console: static HTML, CSS and JavaScript served from memory at `/`, `/js/...` and
//! `/css/...` on the management port.
//!
//! The assets are plain files under `crates/warren-mgmt/console/`, compiled into the binary with
//! `include_bytes!` so the broker needs no files at run time and no build step needs the
//! internet. The console is a client of the HTTP API and nothing else: this module owns no
//! state and never reaches into the broker. It adds no route under `/api`.
//!
//! Caching: every asset carries an `ETag` (a hash of its bytes fixed at compile time) and
//! `cache-control: no-cache`, so a browser revalidates and gets `304 Not Modified` until the
//! binary changes; a new release therefore never runs stale JavaScript against a newer API.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    /// Its path under the console root (`js/main.js`).
    path: &'static str,
    /// Its `content-type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
    /// Its `ETag` value, quotes included.
    etag: &'static str,
}

/// FNV-1a over the bytes: a cheap, stable hash for `ETag`s, computed at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The hash as a quoted 16-digit hex `ETag`, built at compile time.
const fn etag_bytes(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($path:literal, $type:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../console/", $path));
        const TAG: [u8; 18] = etag_bytes(BODY);
        Asset {
            path: $path,
            content_type: $type,
            body: BODY,
            // The tag is ASCII hex between quotes, so this cannot fail; a failure would be a
            // compile-time error, not a run-time one.
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => panic!("etag is ASCII"),
            },
        }
    }};
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the console. A new file under `console/` must be listed here (a test checks
/// that each file on disk is).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("css/main.css", CSS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/history.js", JS),
    asset!("js/list.js", JS),
    asset!("js/forms.js", JS),
    asset!("js/main.js", JS),
    asset!("js/overview.js", JS),
    asset!("js/connections.js", JS),
    asset!("js/channels.js", JS),
    asset!("js/exchanges.js", JS),
    asset!("js/queues.js", JS),
    asset!("js/queue.js", JS),
    asset!("js/admin.js", JS),
    asset!("js/policies.js", JS),
];

/// The console's routes: `/`, `/index.html`, `/favicon.svg`, `/js/{file}`, `/css/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/favicon.svg", get(favicon))
        .route("/js/{file}", get(js))
        .route("/css/{file}", get(css))
}

async fn index(headers: HeaderMap) -> Response {
    respond("index.html", &headers).await
}

async fn favicon(headers: HeaderMap) -> Response {
    respond("favicon.svg", &headers).await
}

async fn js(Path(file): Path<String>, headers: HeaderMap) -> Response {
    respond(&format!("js/{file}"), &headers).await
}

async fn css(Path(file): Path<String>, headers: HeaderMap) -> Response {
    respond(&format!("css/{file}"), &headers).await
}

/// The environment variable that makes the console read its files from a directory at every
/// request instead of from the binary: for working on the console without rebuilding the
/// broker. Only the listed asset paths are read, so it exposes nothing else of that directory.
pub const DEV_DIR_VARIABLE: &str = "WARREN_CONSOLE_DEV_DIR";

async fn respond(path: &str, headers: &HeaderMap) -> Response {
    if let Some(dir) = std::env::var_os(DEV_DIR_VARIABLE)
        && let Some(asset) = find(path)
    {
        let file = std::path::Path::new(&dir).join(asset.path);
        let read = tokio::task::spawn_blocking(move || std::fs::read(file)).await;
        return match read {
            Ok(Ok(body)) => (
                [
                    (header::CONTENT_TYPE, asset.content_type),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response(),
            Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
    }
    serve(path, headers)
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The asset at `path`, `304` when the client's `If-None-Match` names its `ETag`, else `404`.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = find(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not Found",
        )
            .into_response();
    };
    let etag = HeaderValue::from_static(asset.etag);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The console loads only its own files and talks only to its own origin; it is never
    // framed (clickjacking of the admin actions).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_console_is_served_and_nothing_else_is_listed() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/console");
        let mut on_disk = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    on_disk.push(rel);
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn content_types_follow_the_extension() {
        for a in ASSETS {
            let want = match a.path.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => CSS,
                Some("html") => "text/html; charset=utf-8",
                Some("svg") => "image/svg+xml",
                other => panic!("unexpected asset type {other:?}"),
            };
            assert_eq!(a.content_type, want, "{}", a.path);
        }
    }

    #[test]
    fn etags_differ_between_files_and_are_quoted_hex() {
        let mut tags: Vec<&str> = ASSETS.iter().map(|a| a.etag).collect();
        for t in &tags {
            assert_eq!(t.len(), 18);
            assert!(t.starts_with('"') && t.ends_with('"'));
            assert!(t[1..17].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn if_none_match_with_the_etag_answers_304_and_other_tags_200() {
        let a = &ASSETS[0];
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(a.etag));
        assert_eq!(serve(a.path, &h).status(), StatusCode::NOT_MODIFIED);
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(serve(a.path, &h).status(), StatusCode::OK);
    }

    #[test]
    fn unknown_paths_and_traversal_are_404() {
        let h = HeaderMap::new();
        for p in ["js/nope.js", "js/../index.html", "../Cargo.toml", "css/"] {
            assert_eq!(serve(p, &h).status(), StatusCode::NOT_FOUND, "{p}");
        }
    }
}
