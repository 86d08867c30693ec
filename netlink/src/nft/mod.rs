//! nftables: the per-container part of a ruleset, set and map elements, over
//! NETLINK_NETFILTER; the static part through the `nft` tool.
//!
//! A network's structure (tables, chains, sets, its few rules) is text applied with
//! [`apply_ruleset`] when it is missing: one exec, paid by the first container of the
//! network. What each container adds or removes is elements of those sets and maps,
//! sent by [`Nft::apply`] as one batch transaction on a netlink socket: no exec, no
//! rewriting of rules, and a cost that does not grow with the number of containers.
//!
//! Keys and data are bytes encoded as the `nft` tool does ([`key`]), so elements added
//! here and by `nft add element` are the same elements.
//!
//! # Idempotency
//!
//! - Adding an element that exists (same key, same data) succeeds: adds are sent without
//!   `NLM_F_EXCL`. An existing element keeps its comment. A map element whose key exists
//!   with other data is refused by the kernel (EEXIST): to change it, send a `Delete` and
//!   an `Add` of the key in the same [`Nft::apply`] call, which replaces it atomically.
//! - Deleting an element that is absent succeeds, as does deleting from a set or table
//!   that does not exist. The kernel aborts a whole batch on the first failed message, so
//!   a missing element must not reach it as a plain delete. Deletes go out as
//!   `NFT_MSG_DESTROYSETELEM` (Linux 6.3+), which skips missing elements inside the
//!   kernel. When the kernel does not know that message, or a delete fails with ENOENT
//!   anyway (its set is gone), the deletes of the failed messages are checked one by one
//!   (a single-element GETSETELEM each, taking the batch's own earlier adds and deletes
//!   into account), those whose element is absent are dropped, and the batch is sent
//!   again. That costs round trips only on this rare path, never on a normal delete.

pub mod key;
mod ruleset;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::HashMap;
use std::fmt;

use netlink_packet_core::{DefaultNla, Emitable, NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, Nla};
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetAttribute, SetElementAttribute,
    SetElementList, SetElementMessage, SetMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::error::{Error, Result};
use crate::netns::NetNs;
use crate::socket::{DUMP_ATTEMPTS, Socket};
use wire::Msg;

#[cfg(test)]
pub(crate) use ruleset::run_nft;
pub use ruleset::{apply_ruleset, is_installed, query, rule_handles};

/// `NFNL_SUBSYS_NFTABLES`: the batch header names the subsystem in `res_id`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_DESTROYSETELEM` (Linux 6.3): delete, skipping elements that do not exist.
const NFT_MSG_DESTROYSETELEM: u8 = 30;
/// libnftnl's user data type of an element's comment.
const NFTNL_UDATA_SET_ELEM_COMMENT: u8 = 0;
/// The longest comment `nft` accepts (`NFTNL_UDATA_COMMENT_MAXLEN`).
pub const MAX_COMMENT_LEN: usize = 128;
/// `NFT_NAME_MAXLEN` less the NUL: the longest table or set name.
const MAX_NAME_LEN: usize = 255;
/// Upper bound for the nested element list of one message: its length field is 16 bits.
/// A longer list is split over several messages of the same batch.
const MAX_ELEMENTS_BYTES: usize = 60 * 1024;
/// How often [`Nft::apply`] sends a batch again after a delete found its element gone.
const APPLY_ATTEMPTS: usize = 4;

/// An nftables address family: the family of a table, and so of its sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Inet,
    Ip,
    Ip6,
    Arp,
    Bridge,
    Netdev,
}

impl Family {
    /// The family as `nft` writes it: `inet`, `ip`, `ip6`, `arp`, `bridge`, `netdev`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }

    fn proto(self) -> NetfilterProtoFamily {
        match self {
            Family::Inet => NetfilterProtoFamily::Inet,
            Family::Ip => NetfilterProtoFamily::IPv4,
            Family::Ip6 => NetfilterProtoFamily::IPv6,
            Family::Arp => NetfilterProtoFamily::ARP,
            Family::Bridge => NetfilterProtoFamily::Bridge,
            Family::Netdev => NetfilterProtoFamily::NetDev,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to a set or map, for [`Nft::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementOp {
    /// Adds `key` (with `data` for a map, `comment` as `nft` stores comments). Adding an
    /// element that exists with the same data succeeds.
    Add {
        family: Family,
        table: String,
        set: String,
        key: Vec<u8>,
        data: Option<Vec<u8>>,
        comment: Option<String>,
    },
    /// Deletes `key`. Deleting an absent element (or from a missing set) succeeds.
    Delete {
        family: Family,
        table: String,
        set: String,
        key: Vec<u8>,
    },
}

impl ElementOp {
    /// An `Add` with no data and no comment.
    pub fn add(family: Family, table: &str, set: &str, key: impl Into<Vec<u8>>) -> ElementOp {
        ElementOp::Add {
            family,
            table: table.into(),
            set: set.into(),
            key: key.into(),
            data: None,
            comment: None,
        }
    }

    /// A `Delete`.
    pub fn delete(family: Family, table: &str, set: &str, key: impl Into<Vec<u8>>) -> ElementOp {
        ElementOp::Delete {
            family,
            table: table.into(),
            set: set.into(),
            key: key.into(),
        }
    }

    /// Sets the data of an `Add` (the value of a map element); no-op on a `Delete`.
    pub fn with_data(mut self, value: impl Into<Vec<u8>>) -> ElementOp {
        if let ElementOp::Add { data, .. } = &mut self {
            *data = Some(value.into());
        }
        self
    }

    /// Sets the comment of an `Add`; no-op on a `Delete`.
    pub fn with_comment(mut self, text: impl Into<String>) -> ElementOp {
        if let ElementOp::Add { comment, .. } = &mut self {
            *comment = Some(text.into());
        }
        self
    }

    fn target(&self) -> Target<'_> {
        match self {
            ElementOp::Add {
                family, table, set, ..
            }
            | ElementOp::Delete {
                family, table, set, ..
            } => Target {
                family: *family,
                table,
                set,
            },
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            ElementOp::Add { key, .. } | ElementOp::Delete { key, .. } => key,
        }
    }

    fn is_delete(&self) -> bool {
        matches!(self, ElementOp::Delete { .. })
    }

    fn validate(&self) -> Result<()> {
        let target = self.target();
        check_name("table", target.table)?;
        check_name("set", target.set)?;
        if self.key().is_empty() {
            return Err(Error::InvalidArgument(format!(
                "empty key for nftables set {target}"
            )));
        }
        if let ElementOp::Add {
            data: Some(data), ..
        } = self
            && data.is_empty()
        {
            return Err(Error::InvalidArgument(format!(
                "empty data for nftables map {target}"
            )));
        }
        if let ElementOp::Add {
            comment: Some(comment),
            ..
        } = self
            && (comment.len() > MAX_COMMENT_LEN || comment.contains('\0'))
        {
            return Err(Error::InvalidArgument(format!(
                "invalid comment {comment:?} for nftables set {target}: at most \
                 {MAX_COMMENT_LEN} bytes, no NUL"
            )));
        }
        Ok(())
    }

    /// The element's attributes in a NEWSETELEM / DELSETELEM message.
    fn element_attributes(&self) -> Vec<SetElementAttribute> {
        let mut attrs = vec![SetElementAttribute::Key(DataAttribute::Value(
            self.key().to_vec(),
        ))];
        if let ElementOp::Add { data, comment, .. } = self {
            if let Some(data) = data {
                attrs.push(SetElementAttribute::Data(DataAttribute::Value(
                    data.clone(),
                )));
            }
            if let Some(comment) = comment {
                attrs.push(SetElementAttribute::UserData(encode_comment(comment)));
            }
        }
        attrs
    }
}

/// An element as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    /// The value of a map element (`None` in a plain set, and for verdict maps).
    pub data: Option<Vec<u8>>,
    /// The comment `nft` shows (`comment "..."`).
    pub comment: Option<String>,
}

/// A set in a table of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Target<'a> {
    family: Family,
    table: &'a str,
    set: &'a str,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.set)
    }
}

/// A NETLINK_NETFILTER socket for nftables, bound to the namespace it was opened in
/// (whichever thread then uses it).
pub struct Nft {
    socket: Socket<Msg>,
    /// The message type deletes go out as when it is not DELSETELEM:
    /// `NFT_MSG_DESTROYSETELEM`, until the kernel refuses it (before Linux 6.3).
    destroy_type: Option<u8>,
}

/// How one batch went wrong: the failed messages (index into the batch's groups) with
/// their errors, or the batch as a whole.
enum BatchFailure {
    Groups(Vec<(usize, Error)>),
    Whole(Error),
}

/// Consecutive ops of the same kind on the same set: one message.
struct Group<'a> {
    delete: bool,
    target: Target<'a>,
    /// Indexes into the ops; never empty.
    ops: Vec<usize>,
}

impl Nft {
    /// Opens a socket in the calling thread's netns.
    pub fn host() -> Result<Nft> {
        Ok(Nft {
            socket: Socket::open(NETLINK_NETFILTER)?,
            destroy_type: Some(NFT_MSG_DESTROYSETELEM),
        })
    }

    /// Opens a socket inside `ns` ([`NetNs::open_inside`]).
    pub fn in_netns(ns: &NetNs) -> Result<Nft> {
        ns.open_inside(Nft::host)?
    }

    /// Closes the socket without waiting for the kernel to free what its transactions
    /// deleted: the last close happens in a child after the process exits (see
    /// [`crate::close_after_exit`]). For plugins, which exit right after.
    pub fn close_after_exit(self) {
        // SAFETY: the descriptor stays open for the duration of the borrow (`self` lives
        // until the end of this function).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.socket.raw_fd()) };
        crate::close_after_exit(fd);
    }

    /// Whether the table exists (`NFT_MSG_GETTABLE`).
    pub fn table_exists(&mut self, family: Family, table: &str) -> Result<bool> {
        check_name("table", table)?;
        let msg = message(
            family,
            NfTablesMessage::GetTable(TableMessage {
                attributes: vec![TableAttribute::Name(table.into())],
            }),
        );
        exists(self.socket.request(msg, 0))
            .map_err(|e| e.during(format!("get nftables table {family} {table}")))
    }

    /// Whether the set (or map) exists (`NFT_MSG_GETSET`); a missing table is `false`.
    pub fn set_exists(&mut self, family: Family, table: &str, set: &str) -> Result<bool> {
        check_name("table", table)?;
        check_name("set", set)?;
        let msg = message(
            family,
            NfTablesMessage::GetSet(SetMessage {
                attributes: vec![
                    SetAttribute::Table(table.into()),
                    SetAttribute::Name(set.into()),
                ],
            }),
        );
        exists(self.socket.request(msg, 0))
            .map_err(|e| e.during(format!("get nftables set {family} {table} {set}")))
    }

    /// Applies `ops` as ONE transaction: every add and delete happens, or none does. See
    /// the module documentation for why adds of existing elements and deletes of absent
    /// ones succeed.
    pub fn apply(&mut self, ops: &[ElementOp]) -> Result<()> {
        for op in ops {
            op.validate()?;
        }
        if ops.is_empty() {
            return Ok(());
        }
        let mut current: Vec<&ElementOp> = ops.iter().collect();
        // The destroy type given up on for DELSETELEM, if this call did.
        let mut fell_back = None;
        let mut last_error = None;
        for _ in 0..APPLY_ATTEMPTS {
            let groups = group(&current);
            let mut failed = match self.send_elements(&current, &groups) {
                Ok(()) => return Ok(()),
                Err(BatchFailure::Whole(e)) => {
                    return Err(e.during("apply nftables element batch"));
                }
                Err(BatchFailure::Groups(failed)) => failed,
            };
            let is_delete = |i: usize| groups.get(i).is_some_and(|g| g.delete);
            let unknown_type =
                |e: &Error| matches!(e.errno(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP));
            // A kernel before 6.3 refuses DESTROYSETELEM (EINVAL: unknown type): go back
            // to DELSETELEM. If that fails the same way, the elements were at fault.
            if self.destroy_type.is_some()
                && failed.iter().any(|(i, e)| is_delete(*i) && unknown_type(e))
            {
                log::debug!("nftables: DESTROYSETELEM refused, falling back to DELSETELEM");
                fell_back = self.destroy_type.take();
                continue;
            }
            if fell_back.is_some() && failed.iter().any(|(i, e)| is_delete(*i) && unknown_type(e)) {
                self.destroy_type = fell_back;
            }
            // Anything but a delete that found nothing is the caller's (or the kernel's).
            if let Some(pos) = failed
                .iter()
                .position(|(i, e)| !(is_delete(*i) && e.is_not_found()))
            {
                let (i, e) = failed.swap_remove(pos);
                return Err(describe(&groups, i, e));
            }
            let failed_ops: Vec<usize> = failed
                .iter()
                .filter_map(|(i, _)| groups.get(*i))
                .flat_map(|g| g.ops.iter().copied())
                .collect();
            last_error = failed
                .into_iter()
                .next()
                .map(|(i, e)| describe(&groups, i, e));
            current = self.drop_absent_deletes(&current, &failed_ops)?;
            if current.is_empty() {
                return Ok(());
            }
        }
        Err(last_error.unwrap_or_else(|| Error::protocol("nftables batch kept failing")))
    }

    /// Every element of a set or map (`NFT_MSG_GETSETELEM` dump), for CHECK and GC. A
    /// missing set or table is a not-found error ([`Error::is_not_found`]).
    ///
    /// A dump longer than one message is resumed by the kernel by skipping as many
    /// elements as it sent before, and a hash set that resizes in between (it does so in
    /// the background, after inserts) walks in another order: some elements come twice
    /// and as many not at all. No transaction happened, so the kernel does not flag the
    /// dump as interrupted. A duplicate key is the sign: the dump is then started over.
    pub fn elements(&mut self, family: Family, table: &str, set: &str) -> Result<Vec<Element>> {
        check_name("table", table)?;
        check_name("set", set)?;
        let op = || format!("list nftables set {family} {table} {set}");
        for attempt in 1..=DUMP_ATTEMPTS {
            let msg = message(
                family,
                NfTablesMessage::GetSetElement(SetElementMessage {
                    attributes: vec![
                        SetElementList::Table(table.into()),
                        SetElementList::Set(set.into()),
                    ],
                }),
            );
            let replies = self.socket.dump(msg).map_err(|e| e.during(op()))?;
            let mut elements = Vec::new();
            for reply in replies {
                if let Msg::Elements(attrs) = reply {
                    wire::parse_elements(&attrs, &mut elements).map_err(|e| e.during(op()))?;
                }
            }
            let mut keys: Vec<&[u8]> = elements.iter().map(|e| e.key.as_slice()).collect();
            keys.sort_unstable();
            if keys.windows(2).all(|w| w[0] != w[1]) {
                return Ok(elements);
            }
            log::debug!(
                "{}: duplicate keys (attempt {attempt}), starting over",
                op()
            );
            std::thread::sleep(std::time::Duration::from_millis(attempt as u64));
        }
        Err(Error::DumpInterrupted {
            op: op(),
            attempts: DUMP_ATTEMPTS,
        })
    }

    /// Whether the set holds `key` (a single-element `NFT_MSG_GETSETELEM`). A missing set
    /// or table counts as absent: [`Nft::set_exists`] tells them apart.
    pub fn has_element(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> Result<bool> {
        Ok(self.get_element(family, table, set, key)?.is_some())
    }

    /// The element of the set with `key`, with its data and comment (a single-element
    /// `NFT_MSG_GETSETELEM`: no listing of the set); `None` when absent, also when the set or
    /// table is missing.
    pub fn get_element(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> Result<Option<Element>> {
        check_name("table", table)?;
        check_name("set", set)?;
        let target = Target { family, table, set };
        self.element(target, key)
            .map_err(|e| e.during(format!("get element of nftables set {target}")))
    }

    /// Deletes a table with everything in it (`NFT_MSG_DELTABLE`); a missing table is
    /// fine.
    #[cfg(test)]
    pub(crate) fn delete_table(&mut self, family: Family, table: &str) -> Result<()> {
        check_name("table", table)?;
        let msg = message(
            family,
            NfTablesMessage::DeleteTable(TableMessage {
                attributes: vec![TableAttribute::Name(table.into())],
            }),
        );
        let result = match self.batch(vec![(msg, 0)]) {
            Ok(()) => Ok(()),
            Err(BatchFailure::Whole(e)) => Err(e),
            Err(BatchFailure::Groups(mut failed)) => match failed.pop() {
                Some((_, e)) if e.is_not_found() => Ok(()),
                Some((_, e)) => Err(e),
                None => Ok(()),
            },
        };
        result.map_err(|e| e.during(format!("delete nftables table {family} {table}")))
    }

    fn element(&mut self, target: Target<'_>, key: &[u8]) -> Result<Option<Element>> {
        let element = ListAttribute::Element(vec![SetElementAttribute::Key(DataAttribute::Value(
            key.to_vec(),
        ))]);
        let msg = message(
            target.family,
            NfTablesMessage::GetSetElement(SetElementMessage {
                attributes: vec![
                    SetElementList::Table(target.table.into()),
                    SetElementList::Set(target.set.into()),
                    SetElementList::Elements(vec![element]),
                ],
            }),
        );
        let found = |elements: Vec<Element>| elements.into_iter().find(|el| el.key == key);
        match self.socket.request(msg, 0) {
            Ok(replies) => {
                let mut elements = Vec::new();
                for reply in replies {
                    if let Msg::Elements(attrs) = reply {
                        wire::parse_elements(&attrs, &mut elements)?;
                    }
                }
                Ok(found(elements))
            }
            Err(e) if e.is_not_found() => Ok(None),
            // A kernel without single-element get: look through the whole set.
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
                match self.elements(target.family, target.table, target.set) {
                    Ok(elements) => Ok(found(elements)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps the ops except the deletes among `failed_ops` whose element is absent, taking
    /// the batch's earlier ops on the same key into account.
    fn drop_absent_deletes<'a>(
        &mut self,
        ops: &[&'a ElementOp],
        failed_ops: &[usize],
    ) -> Result<Vec<&'a ElementOp>> {
        let mut present: HashMap<(Target<'a>, &'a [u8]), bool> = HashMap::new();
        let mut kept = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let op: &'a ElementOp = op;
            let slot = (op.target(), op.key());
            if !op.is_delete() {
                present.insert(slot, true);
                kept.push(op);
                continue;
            }
            if !failed_ops.contains(&i) {
                present.insert(slot, false);
                kept.push(op);
                continue;
            }
            let there = match present.get(&slot) {
                Some(there) => *there,
                None => self
                    .element(slot.0, slot.1)
                    .map_err(|e| e.during(format!("get element of nftables set {}", slot.0)))?
                    .is_some(),
            };
            if there {
                kept.push(op);
            } else {
                log::debug!("nftables: element of {} already gone", slot.0);
            }
            present.insert(slot, false);
        }
        Ok(kept)
    }

    /// Sends the ops, grouped, as one batch.
    fn send_elements(
        &mut self,
        ops: &[&ElementOp],
        groups: &[Group<'_>],
    ) -> std::result::Result<(), BatchFailure> {
        let msgs = groups.iter().map(|g| self.group_message(ops, g)).collect();
        self.batch(msgs)
    }

    /// The message of a group, with its flags: adds create, never exclusively.
    fn group_message(&self, ops: &[&ElementOp], group: &Group<'_>) -> (Msg, u16) {
        let target = group.target;
        let elements = group
            .ops
            .iter()
            .filter_map(|i| ops.get(*i))
            .map(|op| ListAttribute::Element(op.element_attributes()))
            .collect();
        let attributes = vec![
            SetElementList::Table(target.table.into()),
            SetElementList::Set(target.set.into()),
            SetElementList::Elements(elements),
        ];
        let inner = match (group.delete, self.destroy_type) {
            (false, _) => NfTablesMessage::NewSetElement(SetElementMessage { attributes }),
            (true, None) => NfTablesMessage::DeleteSetElement(SetElementMessage { attributes }),
            (true, Some(message_type)) => NfTablesMessage::Other {
                message_type,
                attributes: attributes.iter().map(raw_nla).collect(),
            },
        };
        let flags = if group.delete { 0 } else { NLM_F_CREATE };
        (message(target.family, inner), flags)
    }

    /// Sends `msgs` (with their flags) between BATCH_BEGIN and BATCH_END, each asking
    /// for an ACK.
    fn batch(&mut self, msgs: Vec<(Msg, u16)>) -> std::result::Result<(), BatchFailure> {
        let count = msgs.len();
        let mut all = Vec::with_capacity(count + 2);
        all.push((batch_control(ControlMessage::BatchBegin), 0));
        for (msg, flags) in msgs {
            all.push((msg, flags | NLM_F_ACK));
        }
        all.push((batch_control(ControlMessage::BatchEnd), 0));
        let answers = self.socket.batch(all).map_err(BatchFailure::Whole)?;
        let mut failed = Vec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Some(Err(e)) if i == 0 || i > count => return Err(BatchFailure::Whole(e)),
                Some(Err(e)) => failed.push((i - 1, e)),
                _ => {}
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(BatchFailure::Groups(failed))
        }
    }
}

/// Groups consecutive ops of the same kind on the same set, keeping each group's element
/// list under the 16-bit attribute length.
fn group<'a>(ops: &[&'a ElementOp]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut bytes = 0;
    let mut last: Option<(bool, Target<'_>)> = None;
    for (i, op) in ops.iter().enumerate() {
        let this = (op.is_delete(), op.target());
        let size = element_size(op);
        let same = last == Some(this) && bytes + size <= MAX_ELEMENTS_BYTES;
        match groups.last_mut() {
            Some(g) if same => {
                g.ops.push(i);
                bytes += size;
            }
            _ => {
                groups.push(Group {
                    delete: this.0,
                    target: this.1,
                    ops: vec![i],
                });
                bytes = size;
            }
        }
        last = Some(this);
    }
    groups
}

/// The bytes an element takes in a message's element list.
fn element_size(op: &ElementOp) -> usize {
    ListAttribute::Element(op.element_attributes()).buffer_len()
}

/// Says which message failed: `add element to nftables set inet t s: ...`.
fn describe(groups: &[Group<'_>], index: usize, e: Error) -> Error {
    let Some(group) = groups.get(index) else {
        return e;
    };
    let verb = if group.delete {
        "delete element from"
    } else {
        "add element to"
    };
    let n = group.ops.len();
    let count = if n == 1 {
        String::new()
    } else {
        format!(" ({n} elements in the message)")
    };
    e.during(format!("{verb} nftables set {}{count}", group.target))
}

fn message(family: Family, inner: NfTablesMessage) -> Msg {
    Msg::Netfilter(NetfilterMessage::new(
        NetfilterHeader::new(family.proto(), 0, 0),
        inner,
    ))
}

fn batch_control(inner: ControlMessage) -> Msg {
    Msg::Netfilter(NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
        inner,
    ))
}

/// An attribute as raw bytes, for messages the crate has no type for.
fn raw_nla(attr: &SetElementList) -> DefaultNla {
    let mut value = vec![0; attr.value_len()];
    attr.emit_value(&mut value);
    let nested = if attr.is_nested() { NLA_F_NESTED } else { 0 };
    DefaultNla::new(attr.kind() | nested, value)
}

/// A GET answered: exists; ENOENT: does not.
fn exists<T>(reply: Result<T>) -> Result<bool> {
    match reply {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid nftables {what} name {name:?}"
        )));
    }
    Ok(())
}

/// A comment as `nft` stores it in `NFTA_SET_ELEM_USERDATA`: a libnftnl TLV of type
/// `NFTNL_UDATA_SET_ELEM_COMMENT` holding the text and its NUL.
fn encode_comment(comment: &str) -> Vec<u8> {
    let len = comment.len() + 1;
    let mut out = Vec::with_capacity(2 + len);
    out.push(NFTNL_UDATA_SET_ELEM_COMMENT);
    // validate() bounds comments to MAX_COMMENT_LEN, far below 255.
    out.push(u8::try_from(len).unwrap_or(u8::MAX));
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    out
}

/// The comment in an element's user data, if any.
fn decode_comment(userdata: &[u8]) -> Option<String> {
    let mut rest = userdata;
    while let [kind, len, tail @ ..] = rest {
        let value = tail.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_SET_ELEM_COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = &tail[value.len()..];
    }
    None
}
