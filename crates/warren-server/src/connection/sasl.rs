//! SASL in `connection.start` / `start-ok`: which mechanisms are offered, and who a response
//! logs in. PLAIN and AMQPLAIN carry a password; EXTERNAL names the user by the TLS client
//! certificate (RabbitMQ's `rabbitmq_auth_mechanism_ssl`, which Warren always has).

use bytes::{BufMut, BytesMut};
use warren_broker::{Broker, User};
use warren_codec::{FieldTable, wire::Reader};

use crate::config::Config;
use crate::tls::options::Verify;
use crate::tls::{LoginFrom, Transport};

/// The order RabbitMQ 3.10 lists its mechanisms in (its registry's order, not the configured
/// one): `AMQPLAIN PLAIN EXTERNAL`.
const ORDER: [&str; 3] = ["AMQPLAIN", "PLAIN", "EXTERNAL"];

/// Whether `mechanism` is offered on this transport: configured in `auth_mechanisms`, and for
/// EXTERNAL a TLS connection (with or without a client certificate: RabbitMQ offers it to a
/// client without one so that the refusal names the missing certificate).
fn is_offered(mechanism: &str, config: &Config, transport: &Transport) -> bool {
    config.auth_mechanisms.iter().any(|m| m == mechanism)
        && (mechanism != "EXTERNAL" || matches!(transport, Transport::Tls { .. }))
}

/// The `mechanisms` field of `connection.start`.
pub fn offered(config: &Config, transport: &Transport) -> String {
    ORDER
        .into_iter()
        .filter(|m| is_offered(m, config, transport))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The user a `start-ok` logs in, `Ok(Err(why))` when the login is refused (`why` is RabbitMQ's
/// log text, the client only learns that it was refused), or an error that ends the handshake
/// without a word (a mechanism that is unknown or not offered, as RabbitMQ's reader does).
pub fn login(
    mechanism: &str,
    response: &[u8],
    config: &Config,
    transport: &Transport,
    broker: &Broker,
    loopback: bool,
) -> Result<Result<User, String>, String> {
    if !ORDER.contains(&mechanism) {
        return Err(format!("unknown authentication mechanism '{mechanism}'"));
    }
    if !is_offered(mechanism, config, transport) {
        return Err(format!("invalid authentication mechanism '{mechanism}'"));
    }
    let credentials = match mechanism {
        "PLAIN" => parse_plain(response),
        "AMQPLAIN" => parse_amqplain(response),
        _ => return Ok(external(config, transport, broker, loopback)),
    };
    let Some((name, password)) = credentials else {
        return Ok(Err("malformed response".into()));
    };
    Ok(broker
        .authenticate(&name, &password, loopback)
        .ok_or_else(|| format!("user '{name}' - invalid credentials")))
}

/// EXTERNAL: the certificate's name, which must be a user; refused with RabbitMQ's texts.
fn external(
    config: &Config,
    transport: &Transport,
    broker: &Broker,
    loopback: bool,
) -> Result<User, String> {
    let Transport::Tls { peer_cert } = transport else {
        return Err("not a TLS-enabled connection".into());
    };
    let Some(cert) = peer_cert else {
        return Err("connection peer presented no TLS (x.509) certificate".into());
    };
    // Without peer verification a certificate proves nothing: RabbitMQ refuses to trust it.
    if config.ssl_options.verify != Verify::VerifyPeer {
        return Err("TLS configuration is unsafe".into());
    }
    let how = LoginFrom {
        from: config.ssl_cert_login_from,
        san_type: config.ssl_cert_login_san_type,
        san_index: config.ssl_cert_login_san_index as usize,
    };
    let name = crate::tls::identity::user_name(cert, &how).map_err(|e| e.to_string())?;
    tracing::debug!(user = %name, "EXTERNAL: user name taken from the peer certificate");
    match broker.user_for_external_login(&name, loopback) {
        Some(user) => Ok(user),
        None if broker.user(&name).is_some() => {
            Err(format!("user '{name}' can only connect via localhost"))
        }
        None => Err(format!("user '{name}' - invalid credentials")),
    }
}

/// PLAIN: `\0user\0password` (an authorisation identity before the first NUL is ignored).
pub fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(pass.to_vec()).ok()?,
    ))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
pub fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut framed = BytesMut::with_capacity(response.len() + 4);
    framed.put_u32(response.len() as u32);
    framed.put_slice(response);
    let framed = framed.freeze();
    let table = FieldTable::decode(&mut Reader::new(&framed)).ok()?;
    let text = |k: &str| {
        table
            .get(k)
            .and_then(|v| v.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_amqplain_credentials_parse() {
        assert_eq!(
            parse_plain(b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        let t: FieldTable = [("LOGIN", "u"), ("PASSWORD", "p")].into_iter().collect();
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        assert_eq!(parse_amqplain(&buf[4..]), Some(("u".into(), "p".into())));
        assert_eq!(parse_plain(b"nonul"), None);
    }

    #[test]
    fn external_is_offered_on_tls_only_and_when_configured() {
        let mut config = Config::default();
        let tls = Transport::Tls { peer_cert: None };
        assert_eq!(offered(&config, &tls), "AMQPLAIN PLAIN");
        config.auth_mechanisms = vec!["EXTERNAL".into(), "PLAIN".into(), "AMQPLAIN".into()];
        assert_eq!(offered(&config, &tls), "AMQPLAIN PLAIN EXTERNAL");
        assert_eq!(offered(&config, &Transport::Plain), "AMQPLAIN PLAIN");
        config.auth_mechanisms = vec!["EXTERNAL".into()];
        assert_eq!(offered(&config, &tls), "EXTERNAL");
    }
}
