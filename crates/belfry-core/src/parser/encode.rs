//! Packet to text.

use std::fmt::Write as _;

use super::{Packet, PacketData};

impl Packet {
    /// The packet's text: `<type>[<n>-][<nsp>,][<ack id>][<json>]`. Binary attachments, if
    /// any, are sent after it, one Engine.IO binary message each ([`Packet::attachments`]).
    pub fn encode(&self) -> String {
        self.encode_after("")
    }

    /// [`Packet::encode`] after `prefix`, in one allocation (Belfry writes the Engine.IO type
    /// `4` first, so that the engine sends the text without copying it again).
    pub fn encode_after(&self, prefix: &str) -> String {
        let (kind, attachments, ack, json) = match &self.data {
            PacketData::Connect(json) => ('0', 0, None, json.as_deref()),
            PacketData::Disconnect => ('1', 0, None, None),
            PacketData::Event { payload, ack } if payload.attachments.is_empty() => {
                ('2', 0, *ack, Some(&*payload.json))
            }
            PacketData::Event { payload, ack } => {
                ('5', payload.attachments.len(), *ack, Some(&*payload.json))
            }
            PacketData::Ack { payload, ack } if payload.attachments.is_empty() => {
                ('3', 0, Some(*ack), Some(&*payload.json))
            }
            PacketData::Ack { payload, ack } => (
                '6',
                payload.attachments.len(),
                Some(*ack),
                Some(&*payload.json),
            ),
            PacketData::ConnectError(json) => ('4', 0, None, Some(&**json)),
        };
        let json = json.unwrap_or("");
        let mut out = String::with_capacity(prefix.len() + json.len() + self.ns.len() + 24);
        out.push_str(prefix);
        out.push(kind);
        if attachments > 0 {
            let _ = write!(out, "{attachments}-");
        }
        if &*self.ns != "/" {
            out.push_str(&self.ns);
            out.push(',');
        }
        if let Some(ack) = ack {
            let _ = write!(out, "{ack}");
        }
        out.push_str(json);
        out
    }
}
