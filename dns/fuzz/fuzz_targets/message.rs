//! Any bytes, from a member and from a stranger, over UDP and TCP, through the one entry
//! point the sidecar's transports use: no panic, and every reply is a message hickory reads.
//! The UDP fast path too: no panic, and what it answers the general path answers the same.
#![no_main]

use std::net::SocketAddr;

use cni_dns::server::engine::{Engine, MAX_MESSAGE, Outcome};
use cni_dns::server::fast::Scratch;
use cni_dns::server::records::Records;
use cni_dns::store::Attachment;
use hickory_net::xfer::Protocol;
use libfuzzer_sys::fuzz_target;

fn snapshot() -> cni_dns::server::Snapshot {
    let mut records = Records::default();
    let ips = vec![
        "10.1.0.2/24".parse().unwrap(),
        "fd01::2/64".parse().unwrap(),
    ];
    records.set_network(
        "n",
        vec![Attachment {
            container_id: "0123456789abcdef".into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some("web".into()),
            aliases: vec!["lb".into()],
            ips,
            gateways: vec!["10.1.0.1".parse().unwrap()],
        }],
    );
    records.snapshot()
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    let engine = Engine::new(0);
    for src in ["10.1.0.3:5353", "192.0.2.1:5353"] {
        let src: SocketAddr = src.parse().unwrap();
        for proto in [Protocol::Udp, Protocol::Tcp] {
            if let Outcome::Reply(reply) = engine.handle(&snap, data, src, proto) {
                assert!(hickory_proto::op::Message::from_vec(&reply).is_ok());
            }
        }
        let mut out = vec![0u8; MAX_MESSAGE];
        if let Some(len) =
            engine.answer_fast(&snap, data, src.ip(), &mut out, &mut Scratch::default())
        {
            let fast =
                hickory_proto::op::Message::from_vec(&out[..len]).expect("fast reply parses");
            let Outcome::Reply(reply) = engine.handle(&snap, data, src, Protocol::Udp) else {
                panic!("the fast path answered what the general path does not");
            };
            let slow = hickory_proto::op::Message::from_vec(&reply).expect("reply parses");
            assert_eq!(fast.metadata, slow.metadata);
            assert_eq!(fast.queries, slow.queries);
            assert_eq!(fast.answers.len(), slow.answers.len());
        }
    }
});
