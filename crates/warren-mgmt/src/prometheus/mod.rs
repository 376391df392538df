//! Prometheus: RabbitMQ's `rabbitmq_prometheus` endpoints on their own listener
//! (`prometheus_port`, 15692 by default) in the text exposition format (version 0.0.4):
//!
//! - `/metrics`: node metrics and every per-object family summed over its objects, unlabelled
//!   (RabbitMQ's default, `return_per_object_metrics = false`);
//! - `/metrics/per-object`: the same families with one sample per queue, channel, connection;
//! - `/metrics/detailed?family=F&vhost=V`: only the families asked for, per object, named
//!   `rabbitmq_detailed_*`, queues limited to the vhosts asked for.
//!
//! A scrape reads the live counters (a queue's under its lock, once; channels' and
//! connections' atomics) when it comes: nothing is kept between scrapes, and the message path
//! knows nothing of it. No authentication, as RabbitMQ's plugin by default.

mod families;
mod globals;
mod text;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use families::{FAMILIES, Family, Kind, Object};
pub use text::{Exposition, parse_exposition};

use crate::{Management, RABBITMQ_VERSION};

/// One queue's values, indexed by [`Family::field`].
pub type QueueRow = (String, String, [u64; 8]);
/// One channel's values: its label and [`crate::counters::CHANNEL_COUNTERS`] then gauges.
pub type ChannelRow = (String, [u64; 16]);
/// One connection's values: its label, its socket counters, then its channel count.
pub type ConnectionRow = (String, [u64; 5]);

/// Which endpoint is scraped.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// `/metrics`.
    #[default]
    Aggregated,
    /// `/metrics/per-object`.
    PerObject,
    /// `/metrics/detailed`: the families and vhosts asked for (no vhost: all).
    Detailed {
        /// `family` parameters.
        families: HashSet<String>,
        /// `vhost` parameters.
        vhosts: HashSet<String>,
    },
}

/// Everything a scrape reports, read from the broker and the connections.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Per queue.
    pub queues: Vec<QueueRow>,
    /// Per channel.
    pub channels: Vec<ChannelRow>,
    /// Per connection.
    pub connections: Vec<ConnectionRow>,
    /// Consumers over all queues.
    pub consumers: u64,
}

/// Reads the counters a scrape reports (queues of the vhosts `scope` asks for).
pub fn gather(m: &Management, scope: &Scope) -> Gathered {
    let mut g = Gathered::default();
    for vh in m.broker.vhosts() {
        let queues: Vec<_> = vh.topology().queues().cloned().collect();
        let wanted = match scope {
            Scope::Detailed { vhosts, .. } => vhosts.is_empty() || vhosts.contains(&vh.name),
            _ => true,
        };
        for q in queues {
            let s = q.snapshot();
            g.consumers += s.consumers.len() as u64;
            if wanted {
                g.queues.push((
                    vh.name.clone(),
                    q.name.to_string(),
                    [
                        s.ready,
                        s.unacked,
                        s.ready + s.unacked,
                        s.consumers.len() as u64,
                        s.ready_bytes + s.unacked_bytes,
                        s.ready_bytes,
                        s.unacked_bytes,
                        s.counters.publish,
                    ],
                ));
            }
        }
    }
    for c in m.connections.list() {
        let io = c.stats.counters();
        g.connections.push((
            format!("<{}>", c.name),
            [io[0], io[1], io[2], io[3], c.channels.len() as u64],
        ));
        for (n, st) in c.channels.iter().zip(&c.channel_stats) {
            let mut v = [0u64; 16];
            v[..11].copy_from_slice(&st.counters());
            v[11] = st.consumer_count.get();
            v[12] = st.messages_unacknowledged.get();
            v[13] = st.messages_unconfirmed.get();
            v[14] = st.prefetch_count.get();
            v[15] = st.global_prefetch_count.get();
            g.channels.push((format!("<{} ({n})>", c.name), v));
        }
    }
    g
}

/// Open file descriptors allowed (`Max open files` of `/proc/self/limits`), 0 when unknown.
pub(crate) fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The whole exposition for `scope`.
pub fn render(m: &Management, scope: &Scope) -> String {
    let g = gather(m, scope);
    let mut out = Exposition::default();
    let detailed = matches!(scope, Scope::Detailed { .. });
    if !detailed {
        let alarm = u64::from((m.memory_alarm)());
        out.family(
            "rabbitmq_alarms_file_descriptor_limit",
            Kind::Untyped,
            "is 1 if file descriptor limit alarm is in effect",
        );
        out.sample("rabbitmq_alarms_file_descriptor_limit", "", 0);
        out.family(
            "rabbitmq_alarms_free_disk_space_watermark",
            Kind::Untyped,
            "is 1 if free disk space watermark alarm is in effect",
        );
        out.sample(
            "rabbitmq_alarms_free_disk_space_watermark",
            "",
            u64::from((m.disk_alarm)()),
        );
        out.family(
            "rabbitmq_alarms_memory_used_watermark",
            Kind::Untyped,
            "is 1 if VM memory watermark alarm is in effect",
        );
        out.sample("rabbitmq_alarms_memory_used_watermark", "", alarm);
        out.family(
            "rabbitmq_process_open_fds",
            Kind::Gauge,
            "Open file descriptors",
        );
        out.sample(
            "rabbitmq_process_open_fds",
            "",
            crate::api::overview::fd_used() as u64,
        );
        out.family(
            "rabbitmq_process_resident_memory_bytes",
            Kind::Gauge,
            "Memory used in bytes",
        );
        out.sample(
            "rabbitmq_process_resident_memory_bytes",
            "",
            crate::api::overview::mem_used(),
        );
        out.family(
            "rabbitmq_process_max_fds",
            Kind::Gauge,
            "Open file descriptors limit",
        );
        out.sample("rabbitmq_process_max_fds", "", max_fds());
        globals::render(m, &mut out);
    }
    let prefix = if detailed {
        "rabbitmq_detailed_"
    } else {
        "rabbitmq_"
    };
    for fam in FAMILIES {
        let labelled = match scope {
            Scope::Aggregated => false,
            Scope::PerObject => true,
            Scope::Detailed { families, .. } => {
                if !families.contains(fam.group) {
                    continue;
                }
                true
            }
        };
        let name = format!("{prefix}{}", fam.name);
        out.family(&name, fam.kind, fam.help);
        let rows: Vec<(String, u64)> = match fam.object {
            Object::Queue => g
                .queues
                .iter()
                .map(|(v, q, vals)| {
                    (
                        format!(
                            "vhost=\"{}\",queue=\"{}\"",
                            text::escape(v),
                            text::escape(q)
                        ),
                        vals[fam.field],
                    )
                })
                .collect(),
            Object::Channel => g
                .channels
                .iter()
                .map(|(c, vals)| (format!("channel=\"{}\"", text::escape(c)), vals[fam.field]))
                .collect(),
            Object::Connection => g
                .connections
                .iter()
                .map(|(c, vals)| (format!("channel=\"{}\"", text::escape(c)), vals[fam.field]))
                .collect(),
        };
        if labelled {
            for (labels, v) in rows {
                out.sample(&name, &labels, v);
            }
        } else if !rows.is_empty() {
            out.sample(&name, "", rows.iter().map(|r| r.1).sum());
        }
    }
    if !detailed {
        let channels = g.channels.len() as u64;
        for (name, help, v) in [
            (
                "rabbitmq_connections",
                "Connections currently open",
                g.connections.len() as u64,
            ),
            ("rabbitmq_channels", "Channels currently open", channels),
            (
                "rabbitmq_consumers",
                "Consumers currently connected",
                g.consumers,
            ),
            ("rabbitmq_queues", "Queues available", g.queues.len() as u64),
        ] {
            out.family(name, Kind::Gauge, help);
            out.sample(name, "", v);
        }
    }
    out.family(
        "rabbitmq_build_info",
        Kind::Untyped,
        "RabbitMQ & Erlang/OTP version info",
    );
    out.sample(
        "rabbitmq_build_info",
        &format!(
            "rabbitmq_version=\"{RABBITMQ_VERSION}\",prometheus_plugin_version=\"{RABBITMQ_VERSION}\",prometheus_client_version=\"warren-{}\",erlang_version=\"none\"",
            env!("CARGO_PKG_VERSION")
        ),
        1,
    );
    out.family(
        "rabbitmq_identity_info",
        Kind::Untyped,
        "RabbitMQ node & cluster identity info",
    );
    let node = text::escape(&m.node);
    out.sample(
        "rabbitmq_identity_info",
        &format!("rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\",rabbitmq_cluster_permanent_id=\"warren-cluster-id-{node}\""),
        1,
    );
    out.finish()
}

/// The scope of `family=a&family=b&vhost=v` (keys repeat).
pub fn detailed_scope(query: Vec<(String, String)>) -> Scope {
    let mut families = HashSet::new();
    let mut vhosts = HashSet::new();
    for (k, v) in query {
        match k.as_str() {
            "family" => {
                families.insert(v);
            }
            "vhost" => {
                vhosts.insert(v);
            }
            _ => {}
        }
    }
    Scope::Detailed { families, vhosts }
}

fn reply(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The Prometheus listener's routes.
pub fn router(state: Arc<Management>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(|s: axum::extract::State<Arc<Management>>| async move {
                reply(render(&s.0, &Scope::Aggregated))
            }),
        )
        .route(
            "/metrics/per-object",
            get(|s: axum::extract::State<Arc<Management>>| async move {
                reply(render(&s.0, &Scope::PerObject))
            }),
        )
        .route(
            "/metrics/detailed",
            get(
                |s: axum::extract::State<Arc<Management>>,
                 Query(q): Query<Vec<(String, String)>>| async move {
                    reply(render(&s.0, &detailed_scope(q)))
                },
            ),
        )
        .with_state(state)
}

/// Serves the Prometheus endpoints on `listener` until `shutdown` completes.
pub async fn serve<L: crate::HttpListener<Addr = SocketAddr>>(
    listener: L,
    state: Arc<Management>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(axum::serve::ListenerExt::tap_io(listener, |_| {}), app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests;
