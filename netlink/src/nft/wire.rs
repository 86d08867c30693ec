//! The messages of the nftables socket, and the parsing of set element lists.
//!
//! Element lists (the NEWSETELEM answers of a dump or a get) are kept raw and read here
//! with a plain attribute walk: the netfilter crate's parser formats the whole remaining
//! buffer into an error context for every element it reads, which makes a dump of 1,000
//! elements cost a fifth of a second. Everything else goes through the crate.

use netlink_packet_core::{
    DecodeError, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NlaBuffer, NlasIterator,
};
use netlink_packet_netfilter::NetfilterMessage;

use super::{Element, decode_comment};
use crate::error::{Error, Result};

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM`.
const NEWSETELEM: u16 = (10 << 8) | 12;
/// `struct nfgenmsg`, before a message's attributes.
const NFGENMSG_LEN: usize = 4;

const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NFT_SET_ELEM_CATCHALL: u32 = 2;

/// A message of the nftables socket.
#[derive(Debug)]
pub(crate) enum Msg {
    Netfilter(NetfilterMessage),
    /// A NEWSETELEM from the kernel: its attributes, unparsed.
    Elements(Vec<u8>),
}

impl NetlinkSerializable for Msg {
    fn message_type(&self) -> u16 {
        match self {
            Msg::Netfilter(m) => m.message_type(),
            Msg::Elements(_) => NEWSETELEM,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Msg::Netfilter(m) => NetlinkSerializable::buffer_len(m),
            Msg::Elements(attrs) => NFGENMSG_LEN + attrs.len(),
        }
    }

    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            Msg::Netfilter(m) => m.serialize(buffer),
            Msg::Elements(attrs) => {
                buffer[..NFGENMSG_LEN].fill(0);
                buffer[NFGENMSG_LEN..NFGENMSG_LEN + attrs.len()].copy_from_slice(attrs);
            }
        }
    }
}

impl NetlinkDeserializable for Msg {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Msg, DecodeError> {
        if header.message_type == NEWSETELEM {
            let attrs = payload
                .get(NFGENMSG_LEN..)
                .ok_or_else(|| DecodeError::from("NEWSETELEM shorter than its nfgenmsg header"))?;
            return Ok(Msg::Elements(attrs.to_vec()));
        }
        NetfilterMessage::deserialize(header, payload).map(Msg::Netfilter)
    }
}

/// The elements of one NEWSETELEM message. Elements without a key (the catch-all) and
/// interval ends are left out.
pub(crate) fn parse_elements(attrs: &[u8], out: &mut Vec<Element>) -> Result<()> {
    for attr in nlas(attrs) {
        let attr = attr?;
        if attr.kind() != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for item in nlas(attr.value()) {
            let item = item?;
            if item.kind() != NFTA_LIST_ELEM {
                continue;
            }
            if let Some(element) = parse_element(item.value())? {
                out.push(element);
            }
        }
    }
    Ok(())
}

fn parse_element(attrs: &[u8]) -> Result<Option<Element>> {
    let mut key = None;
    let mut data = None;
    let mut comment = None;
    for attr in nlas(attrs) {
        let attr = attr?;
        match attr.kind() {
            NFTA_SET_ELEM_KEY => key = data_value(attr.value())?,
            NFTA_SET_ELEM_DATA => data = data_value(attr.value())?,
            NFTA_SET_ELEM_USERDATA => comment = decode_comment(attr.value()),
            NFTA_SET_ELEM_FLAGS => {
                let bytes: [u8; 4] = attr
                    .value()
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Error::protocol("short NFTA_SET_ELEM_FLAGS"))?;
                let flags = u32::from_be_bytes(bytes);
                if flags & (NFT_SET_ELEM_INTERVAL_END | NFT_SET_ELEM_CATCHALL) != 0 {
                    return Ok(None);
                }
            }
            _ => {}
        }
    }
    Ok(key.map(|key| Element { key, data, comment }))
}

/// The `NFTA_DATA_VALUE` inside an `NFTA_SET_ELEM_KEY` or `_DATA` (`None` for a verdict).
fn data_value(nested: &[u8]) -> Result<Option<Vec<u8>>> {
    for attr in nlas(nested) {
        let attr = attr?;
        if attr.kind() == NFTA_DATA_VALUE {
            return Ok(Some(attr.value().to_vec()));
        }
    }
    Ok(None)
}

fn nlas(buf: &[u8]) -> impl Iterator<Item = Result<NlaBuffer<&[u8]>>> {
    NlasIterator::new(buf)
        .map(|nla| nla.map_err(|e| Error::protocol(format!("decode set element: {e}"))))
}
