//! `warren ctl --url https://...`: the management API over TLS, with certificates generated per
//! test. The API's certificate must verify against `--cacert` (or `WARREN_CTL_CACERT`, else the
//! system's CA certificates); an unverified one is refused with a message naming both ways out,
//! unless `--insecure` says to skip the check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::tls::Files;
use rcgen::{DnType, SanType};
use warren_server::ServerHandle;

/// A server with the management API on HTTPS too.
async fn https_server(files: &Files) -> ServerHandle {
    common::start_with(|c| {
        c.management_ssl.enabled = true;
        c.management_ssl.port = 0;
        c.management_ssl.certfile = files.path("server.pem");
        c.management_ssl.keyfile = files.path("server.key");
    })
    .await
}

/// `warren ctl ARGS list_users` with `env`: exit code, standard output and standard error.
async fn list_users(args: Vec<String>, env: Vec<(&'static str, String)>) -> (i32, String, String) {
    let mut cmd = common::warren_binary();
    cmd.arg("ctl").args(args).arg("list_users");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = common::run(cmd).await;
    (run.code, run.out, run.err)
}

#[tokio::test]
async fn https_api_is_used_only_with_a_certificate_that_verifies_or_insecure() {
    let files = Files::new();
    let server = https_server(&files).await;
    let addr = server
        .management_ssl_addr()
        .expect("HTTPS management listener");
    let other = Files::new();
    let ca = files.path("ca.pem").display().to_string();
    let wrong_ca = other.path("ca.pem").display().to_string();
    let missing = files.path("missing.pem").display().to_string();
    let by_ip = format!("https://{addr}");
    let by_name = format!("https://localhost:{}", addr.port());
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    // (case, arguments, environment, Ok(listing) | Err(what standard error says)).
    type Want = Result<&'static str, &'static [&'static str]>;
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'static str, String)>, Want);
    let untrusted: &[&str] = &[
        "presented a certificate that does not verify",
        "--cacert FILE",
        "--insecure",
    ];
    let cases: Vec<Case<'_>> = vec![
        (
            "--cacert, by IP",
            s(&["--url", &by_ip, "--cacert", &ca]),
            vec![],
            Ok("guest"),
        ),
        (
            "--cacert, by name",
            s(&["--url", &by_name, "--cacert", &ca]),
            vec![],
            Ok("guest"),
        ),
        (
            "WARREN_CTL_CACERT",
            s(&["--url", &by_ip]),
            vec![("WARREN_CTL_CACERT", ca.clone())],
            Ok("guest"),
        ),
        (
            "WARREN_CTL_URL and WARREN_CTL_CACERT",
            vec![],
            vec![
                ("WARREN_CTL_URL", by_ip.clone()),
                ("WARREN_CTL_CACERT", ca.clone()),
            ],
            Ok("guest"),
        ),
        (
            "system CAs only",
            s(&["--url", &by_ip]),
            vec![],
            Err(untrusted),
        ),
        (
            "another CA",
            s(&["--url", &by_ip, "--cacert", &wrong_ca]),
            vec![],
            Err(untrusted),
        ),
        (
            "unreadable --cacert",
            s(&["--url", &by_ip, "--cacert", &missing]),
            vec![],
            Err(&["missing.pem"]),
        ),
        (
            "--insecure",
            s(&["--url", &by_ip, "--insecure"]),
            vec![],
            Ok("guest"),
        ),
        (
            "--insecure beats a wrong CA",
            s(&["--url", &by_ip, "--cacert", &wrong_ca, "--insecure"]),
            vec![],
            Ok("guest"),
        ),
        (
            "WARREN_CTL_INSECURE",
            s(&["--url", &by_ip]),
            vec![("WARREN_CTL_INSECURE", "true".into())],
            Ok("guest"),
        ),
    ];
    for (case, args, env, want) in cases {
        let (code, out, err) = list_users(args, env).await;
        match want {
            Ok(user) => {
                assert_eq!(code, 0, "{case}: {out}{err}");
                assert!(out.lines().any(|l| l.starts_with(user)), "{case}: {out}");
            }
            Err(parts) => {
                assert_eq!(code, 1, "{case}: {out}{err}");
                for p in parts {
                    assert!(err.contains(p), "{case}: {p:?} not in {err:?}");
                }
            }
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_even_from_the_trusted_ca() {
    let files = Files::new();
    let leaf = files.ca.issue(
        &[(DnType::CommonName, "other.example")],
        vec![SanType::DnsName("other.example".try_into().unwrap())],
    );
    files.write_server(&leaf);
    let server = https_server(&files).await;
    let url = format!("https://{}", server.management_ssl_addr().unwrap());
    let ca = files.path("ca.pem").display().to_string();
    let (code, out, err) =
        list_users(vec!["--url".into(), url, "--cacert".into(), ca], vec![]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("does not verify") && err.contains("NotValidForName"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}
