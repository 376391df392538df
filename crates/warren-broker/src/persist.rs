//! How the domain is written to and read back from `warren-store`: record conversions, and the
//! [`Store`] trait object every vhost and durable queue holds.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_codec::{FieldTable, wire::Reader};
use warren_router::ExchangeDef;
use warren_store::{DefinitionStore, ExchangeRecord, MessageStore, QueueRecord, StoreError};

use crate::BrokerError;

/// Both halves of a store, as one trait object.
pub trait Store: DefinitionStore + MessageStore {}

impl<T: DefinitionStore + MessageStore> Store for T {}

/// The broker's handle on its store.
pub type SharedStore = Arc<dyn Store>;

/// A field table in its wire encoding, the form records keep.
pub fn encode_table(table: &FieldTable) -> Bytes {
    let mut buf = BytesMut::new();
    table.encode(&mut buf);
    buf.freeze()
}

/// Reads back [`encode_table`]'s output.
pub fn decode_table(bytes: &Bytes) -> Result<FieldTable, StoreError> {
    if bytes.is_empty() {
        return Ok(FieldTable::new());
    }
    FieldTable::decode(&mut Reader::new(bytes))
        .map_err(|e| StoreError::Corrupt(format!("stored arguments do not decode: {e}")))
}

/// The record of a durable exchange.
pub fn exchange_record(def: &ExchangeDef) -> ExchangeRecord {
    ExchangeRecord {
        name: def.name.bytes().clone(),
        kind: Bytes::from_static(def.kind.as_str().as_bytes()),
        auto_delete: def.auto_delete,
        internal: def.internal,
        arguments: encode_table(&def.arguments),
    }
}

/// The record of a durable queue.
pub fn queue_record(
    name: &warren_codec::ShortStr,
    auto_delete: bool,
    arguments: &FieldTable,
) -> QueueRecord {
    QueueRecord {
        name: name.bytes().clone(),
        auto_delete,
        arguments: encode_table(arguments),
    }
}

/// A store failure as the client sees it: 541 INTERNAL_ERROR, a connection error.
pub fn store_failed(e: &StoreError) -> BrokerError {
    tracing::error!(error = %e, "message store failure");
    BrokerError::new(
        warren_codec::ReplyCode::InternalError,
        format!("the message store failed: {e}"),
    )
}
