//! `warren healthcheck` (the container image's `HEALTHCHECK`) against a running broker: healthy,
//! nothing listening, something that is not AMQP, a memory alarm, refused credentials, and the
//! management API turned off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Run;
use warren_server::ServerHandle;

/// `warren healthcheck` configured, as in the container, by `WARREN_*` variables naming the
/// server's ports; off the async runtime.
async fn healthcheck(amqp: SocketAddr, api: Option<SocketAddr>, env: &[(&str, &str)]) -> Run {
    let mut cmd = common::warren_binary();
    cmd.arg("healthcheck").args(["--timeout", "2"]);
    cmd.env("WARREN_BIND", amqp.ip().to_string());
    cmd.env("WARREN_PORT", amqp.port().to_string());
    match api {
        Some(api) => cmd.env("WARREN_MANAGEMENT_PORT", api.port().to_string()),
        None => cmd.env("WARREN_MANAGEMENT_ENABLED", "false"),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::run(cmd).await
}

async fn of(server: &ServerHandle, env: &[(&str, &str)]) -> Run {
    healthcheck(server.addr(), server.management_addr(), env).await
}

/// A loopback port nobody listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn a_serving_broker_is_healthy() {
    let server = common::start().await;
    let run = of(&server, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.out
            .contains(&format!("AMQP listener {}: ok", server.addr())),
        "{run:?}"
    );
    assert!(
        run.out.contains("/api/health/checks/local-alarms: ok"),
        "{run:?}"
    );
    // The probe's abandoned handshake leaves the broker serving.
    assert_eq!(of(&server, &[]).await.code, 0);
    common::connect(&server)
        .await
        .close(200, "bye")
        .await
        .unwrap();
}

#[tokio::test]
async fn nothing_listening_is_unhealthy() {
    let addr = closed_port();
    let run = healthcheck(addr, None, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.err
            .starts_with(&format!("warren: unhealthy: AMQP listener {addr}: ")),
        "{run:?}"
    );
    assert!(run.err.contains("refused"), "{run:?}");
}

#[tokio::test]
async fn a_port_that_does_not_speak_amqp_is_unhealthy() {
    let server = common::start().await;
    // The management API's HTTP port answers the AMQP header, but not with connection.start.
    let http = server.management_addr().unwrap();
    let run = healthcheck(http, None, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.err.contains("not connection.start"), "{run:?}");
}

#[tokio::test]
async fn a_memory_alarm_makes_the_broker_unhealthy_until_it_clears() {
    let server = common::start().await;
    server.set_memory_high_watermark(1e-9).unwrap();
    let mut run = of(&server, &[]).await;
    for _ in 0..50 {
        if run.code != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        run = of(&server, &[]).await;
    }
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.err.contains(
            "management API health check: HTTP 503: There are alarms in effect on the node (memory)"
        ),
        "{run:?}"
    );
    server.set_memory_high_watermark(1.0).unwrap();
    let mut run = of(&server, &[]).await;
    for _ in 0..50 {
        if run.code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        run = of(&server, &[]).await;
    }
    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test]
async fn refused_credentials_are_unhealthy_and_say_which_variables_to_set() {
    let server = common::start().await;
    let run = of(&server, &[("WARREN_CTL_PASSWORD", "wrong")]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.err.contains("refused the credentials"), "{run:?}");
    assert!(run.err.contains("WARREN_CTL_USER"), "{run:?}");
    // The configuration's default user is what the check logs in as by default.
    let run = of(
        &server,
        &[
            ("WARREN_DEFAULT_USER", "nobody"),
            ("WARREN_DEFAULT_PASS", "x"),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
}

#[tokio::test]
async fn with_the_management_api_off_only_amqp_is_checked() {
    let server = common::start_with(|c| c.management_enabled = false).await;
    let run = healthcheck(server.addr(), None, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.out.contains("management"), "{run:?}");
}
