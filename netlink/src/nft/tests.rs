//! Kernel tests: each in a network namespace of its own, never the machine's ruleset.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::key::{self, PROTO_TCP, PROTO_UDP};
use super::*;
use crate::testutil::skip_unless_root;

const T: &str = "cni-test";
const F: Family = Family::Inet;

const RULESET: &str = "
table inet cni-test {
    set v4 { type ipv4_addr; }
    set v6 { type ipv6_addr; }
    set ifmac { type ifname . ether_addr; }
    set svc { type inet_service; }
    set proto { type inet_proto; }
    set tuple { type ipv4_addr . inet_proto . inet_service; }
    map pm { type inet_service : ipv4_addr . inet_service; }
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        dnat ip to tcp dport map @pm
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname . ether saddr @ifmac accept
        ip saddr @v4 accept
    }
}
";

/// A fresh namespace with the test ruleset and a socket in it; `None` without root.
fn setup() -> Option<(NetNs, Nft)> {
    if !skip_unless_root() {
        return None;
    }
    let ns = NetNs::new_unnamed().unwrap();
    apply_ruleset(Some(&ns), RULESET).unwrap();
    let nft = Nft::in_netns(&ns).unwrap();
    Some((ns, nft))
}

/// What `nft -j list set|map` shows of a set's elements, one normalized string each:
/// `10.1.2.3`, `eth0 . 02:42:ac:11:00:02`, `80 : 10.0.0.2 . 8080`, `x comment "c"`.
fn nft_elements(ns: &NetNs, kind: &str, set: &str) -> Vec<String> {
    let out = run_nft(Some(ns), &["-j", "list", kind, "inet", T, set], None).unwrap();
    let json: Value = serde_json::from_str(&out).unwrap();
    let items = json["nftables"].as_array().unwrap();
    let body = items
        .iter()
        .find_map(|item| item.get(kind))
        .unwrap_or_else(|| panic!("no {kind} in {out}"));
    let mut elems: Vec<String> = body
        .get("elem")
        .and_then(Value::as_array)
        .map(|elems| elems.iter().map(show).collect())
        .unwrap_or_default();
    elems.sort();
    elems
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(pair) => format!("{} : {}", show(&pair[0]), show(&pair[1])),
        Value::Object(o) => {
            if let Some(parts) = o.get("concat") {
                let parts: Vec<String> = parts.as_array().unwrap().iter().map(show).collect();
                parts.join(" . ")
            } else if let Some(elem) = o.get("elem") {
                let mut s = show(&elem["val"]);
                if let Some(c) = elem.get("comment") {
                    s += &format!(" comment {c}");
                }
                s
            } else {
                panic!("unexpected element {v}")
            }
        }
        other => panic!("unexpected element {other}"),
    }
}

fn nft_cmd(ns: &NetNs, text: &str) {
    apply_ruleset(Some(ns), text).unwrap();
}

fn v4(s: &str) -> Vec<u8> {
    key::ipv4_addr(s.parse().unwrap()).to_vec()
}

fn mac(s: &str) -> [u8; 6] {
    s.parse::<crate::MacAddr>().unwrap().0
}

fn sorted_keys(elements: &[Element]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = elements.iter().map(|e| e.key.clone()).collect();
    keys.sort();
    keys
}

#[test]
fn elements_added_over_netlink_are_what_nft_shows() {
    let Some((ns, mut nft)) = setup() else { return };
    let ifmac = key::concat(&[
        &key::ifname("veth1234").unwrap(),
        &key::ether_addr(mac("02:42:ac:11:00:02")),
    ]);
    let pm_data = key::concat(&[
        &key::ipv4_addr(Ipv4Addr::new(10, 88, 0, 2)),
        &key::inet_service(8080),
    ]);
    let tuple = key::concat(&[
        &key::ipv4_addr(Ipv4Addr::new(10, 88, 0, 3)),
        &key::inet_proto(PROTO_UDP),
        &key::inet_service(53),
    ]);
    nft.apply(&[
        ElementOp::add(F, T, "v4", v4("10.88.0.2")).with_comment("ctr-abc eth0"),
        ElementOp::add(F, T, "v4", v4("10.88.0.3")),
        ElementOp::add(F, T, "v6", key::ipv6_addr("fd00::2".parse().unwrap())),
        ElementOp::add(F, T, "ifmac", ifmac.clone()),
        ElementOp::add(F, T, "svc", key::inet_service(8080)),
        ElementOp::add(F, T, "proto", key::inet_proto(PROTO_TCP)),
        ElementOp::add(F, T, "tuple", tuple),
        ElementOp::add(F, T, "pm", key::inet_service(80)).with_data(pm_data.clone()),
    ])
    .unwrap();

    assert_eq!(
        nft_elements(&ns, "set", "v4"),
        [r#"10.88.0.2 comment "ctr-abc eth0""#, "10.88.0.3"]
    );
    assert_eq!(nft_elements(&ns, "set", "v6"), ["fd00::2"]);
    assert_eq!(
        nft_elements(&ns, "set", "ifmac"),
        ["veth1234 . 02:42:ac:11:00:02"]
    );
    assert_eq!(nft_elements(&ns, "set", "svc"), ["8080"]);
    assert_eq!(nft_elements(&ns, "set", "proto"), ["tcp"]);
    assert_eq!(nft_elements(&ns, "set", "tuple"), ["10.88.0.3 . udp . 53"]);
    assert_eq!(nft_elements(&ns, "map", "pm"), ["80 : 10.88.0.2 . 8080"]);

    // And our dump reads them back as they were sent.
    let elements = nft.elements(F, T, "v4").unwrap();
    let commented = elements.iter().find(|e| e.key == v4("10.88.0.2")).unwrap();
    assert_eq!(commented.comment.as_deref(), Some("ctr-abc eth0"));
    assert_eq!(commented.data, None);
    let pm = nft.elements(F, T, "pm").unwrap();
    assert_eq!(pm.len(), 1);
    assert_eq!(pm[0].key, key::inet_service(80));
    assert_eq!(pm[0].data.as_deref(), Some(&pm_data[..]));
    assert_eq!(nft.elements(F, T, "ifmac").unwrap()[0].key, ifmac);

    // One element read alone: its data and comment, without listing the set.
    let got = nft
        .get_element(F, T, "pm", &key::inet_service(80))
        .unwrap()
        .unwrap();
    assert_eq!(got.data.as_deref(), Some(&pm_data[..]));
    let got = nft
        .get_element(F, T, "v4", &v4("10.88.0.2"))
        .unwrap()
        .unwrap();
    assert_eq!(got.comment.as_deref(), Some("ctr-abc eth0"));
    assert_eq!(
        nft.get_element(F, T, "v4", &v4("10.88.0.99")).unwrap(),
        None
    );
    assert_eq!(
        nft.get_element(F, T, "nosuch", &v4("10.88.0.2")).unwrap(),
        None
    );
}

#[test]
fn elements_added_by_nft_are_what_the_helpers_encode() {
    let Some((ns, mut nft)) = setup() else { return };
    nft_cmd(
        &ns,
        r#"
        add element inet cni-test v4 { 192.0.2.7 comment "from nft" }
        add element inet cni-test v6 { 2001:db8::1 }
        add element inet cni-test ifmac { eth0 . 0a:58:0a:f4:00:01 }
        add element inet cni-test svc { 443 }
        add element inet cni-test proto { udp }
        add element inet cni-test tuple { 192.0.2.8 . tcp . 8443 }
        add element inet cni-test pm { 8080 comment "web" : 10.88.0.9 . 80 }
        "#,
    );
    let one = |nft: &mut Nft, set: &str| {
        let mut elements = nft.elements(F, T, set).unwrap();
        assert_eq!(elements.len(), 1, "{set}: {elements:?}");
        elements.remove(0)
    };
    let e = one(&mut nft, "v4");
    assert_eq!(e.key, v4("192.0.2.7"));
    assert_eq!(e.comment.as_deref(), Some("from nft"));
    let e = one(&mut nft, "v6");
    assert_eq!(
        e.key,
        key::ipv6_addr("2001:db8::1".parse::<Ipv6Addr>().unwrap())
    );
    let e = one(&mut nft, "ifmac");
    assert_eq!(
        e.key,
        key::concat(&[
            &key::ifname("eth0").unwrap(),
            &key::ether_addr(mac("0a:58:0a:f4:00:01"))
        ])
    );
    let parts = key::split(&e.key, &[key::IFNAMSIZ, 6]).unwrap();
    assert_eq!(key::parse_ifname(parts[0]).as_deref(), Some("eth0"));
    assert_eq!(one(&mut nft, "svc").key, key::inet_service(443));
    assert_eq!(one(&mut nft, "proto").key, key::inet_proto(PROTO_UDP));
    assert_eq!(
        one(&mut nft, "tuple").key,
        key::concat(&[
            &key::ipv4_addr(Ipv4Addr::new(192, 0, 2, 8)),
            &key::inet_proto(PROTO_TCP),
            &key::inet_service(8443)
        ])
    );
    let e = one(&mut nft, "pm");
    assert_eq!(e.key, key::inet_service(8080));
    assert_eq!(e.comment.as_deref(), Some("web"));
    assert_eq!(
        e.data.unwrap(),
        key::concat(&[
            &key::ipv4_addr(Ipv4Addr::new(10, 88, 0, 9)),
            &key::inet_service(80)
        ])
    );

    // has_element finds what nft added, and our deletes remove it.
    assert!(
        nft.has_element(F, T, "svc", &key::inet_service(443))
            .unwrap()
    );
    assert!(
        !nft.has_element(F, T, "svc", &key::inet_service(444))
            .unwrap()
    );
    nft.apply(&[
        ElementOp::delete(F, T, "v4", v4("192.0.2.7")),
        ElementOp::delete(F, T, "pm", key::inet_service(8080)),
    ])
    .unwrap();
    assert!(nft_elements(&ns, "set", "v4").is_empty());
    assert!(nft_elements(&ns, "map", "pm").is_empty());
}

#[test]
fn adds_and_deletes_are_idempotent() {
    let Some((ns, mut nft)) = setup() else { return };
    let add = ElementOp::add(F, T, "v4", v4("10.88.0.2")).with_comment("first");
    nft.apply(std::slice::from_ref(&add)).unwrap();
    // The same element again, even with another comment: fine, the first comment stays.
    nft.apply(&[add.clone(), add.clone().with_comment("second")])
        .unwrap();
    assert_eq!(
        nft_elements(&ns, "set", "v4"),
        [r#"10.88.0.2 comment "first""#]
    );

    let del = ElementOp::delete(F, T, "v4", v4("10.88.0.2"));
    nft.apply(std::slice::from_ref(&del)).unwrap();
    assert!(!nft.has_element(F, T, "v4", &v4("10.88.0.2")).unwrap());
    // Gone already, twice in one batch, from a missing set, from a missing table.
    nft.apply(&[del.clone(), del.clone()]).unwrap();
    nft.apply(&[ElementOp::delete(F, T, "nope", v4("10.88.0.2"))])
        .unwrap();
    nft.apply(&[ElementOp::delete(F, "nope", "v4", v4("10.88.0.2"))])
        .unwrap();

    // A batch mixing a delete of an absent element with adds still applies the adds.
    nft.apply(&[
        ElementOp::add(F, T, "v4", v4("10.88.0.5")),
        ElementOp::delete(F, T, "v4", v4("10.88.0.6")),
        ElementOp::add(F, T, "svc", key::inet_service(1)),
    ])
    .unwrap();
    assert_eq!(nft_elements(&ns, "set", "v4"), ["10.88.0.5"]);
    assert_eq!(nft_elements(&ns, "set", "svc"), ["1"]);
    assert!(!nft.has_element(F, T, "nope", &v4("10.88.0.5")).unwrap());
}

#[test]
fn map_values_are_replaced_by_delete_then_add() {
    let Some((ns, mut nft)) = setup() else { return };
    let data = |ip: [u8; 4], port| key::concat(&[&ip, &key::inet_service(port)]);
    let add =
        |ip, port| ElementOp::add(F, T, "pm", key::inet_service(80)).with_data(data(ip, port));
    nft.apply(&[add([10, 0, 0, 2], 8080)]).unwrap();
    nft.apply(&[add([10, 0, 0, 2], 8080)]).unwrap();
    // Another value for an existing key is refused, and the batch leaves nothing behind.
    let err = nft
        .apply(&[
            ElementOp::add(F, T, "v4", v4("10.9.9.9")),
            add([10, 0, 0, 3], 8080),
        ])
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(err.to_string().contains("inet cni-test pm"), "{err}");
    assert!(nft_elements(&ns, "set", "v4").is_empty());
    // Delete and add in one batch: replaced atomically.
    nft.apply(&[
        ElementOp::delete(F, T, "pm", key::inet_service(80)),
        add([10, 0, 0, 3], 9090),
    ])
    .unwrap();
    assert_eq!(nft_elements(&ns, "map", "pm"), ["80 : 10.0.0.3 . 9090"]);
}

#[test]
fn errors_name_the_set_and_say_not_found() {
    let Some((ns, mut nft)) = setup() else { return };
    let err = nft
        .apply(&[
            ElementOp::add(F, T, "v4", v4("10.88.0.2")),
            ElementOp::add(F, T, "missing", v4("10.88.0.2")),
        ])
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        err.to_string()
            .starts_with("add element to nftables set inet cni-test missing"),
        "{err}"
    );
    // The whole batch was refused.
    assert!(nft_elements(&ns, "set", "v4").is_empty());

    // A key of the wrong length is the kernel's EINVAL, not a crash.
    let err = nft
        .apply(&[ElementOp::add(F, T, "v4", vec![1, 2, 3])])
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    let err = nft
        .apply(&[ElementOp::delete(F, T, "v4", vec![1, 2, 3])])
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    // Caught before the kernel.
    assert!(matches!(
        nft.apply(&[ElementOp::add(F, T, "v4", Vec::new())]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        nft.apply(&[ElementOp::add(F, T, "v4", v4("10.0.0.1")).with_comment("x".repeat(129))]),
        Err(Error::InvalidArgument(_))
    ));
    let err = nft.elements(F, T, "missing").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn deletes_work_without_destroysetelem_as_on_kernels_before_6_3() {
    let Some((ns, mut nft)) = setup() else { return };
    // A message type this kernel does not know stands for DESTROYSETELEM on an old one.
    nft.destroy_type = Some(250);
    nft.apply(&[
        ElementOp::add(F, T, "v4", v4("10.88.0.2")),
        ElementOp::add(F, T, "v4", v4("10.88.0.3")),
    ])
    .unwrap();
    // One present, one absent, one deleted twice, one added then deleted in the batch,
    // one in a missing set.
    nft.apply(&[
        ElementOp::delete(F, T, "v4", v4("10.88.0.2")),
        ElementOp::delete(F, T, "v4", v4("10.88.0.4")),
        ElementOp::delete(F, T, "v4", v4("10.88.0.2")),
        ElementOp::add(F, T, "v4", v4("10.88.0.7")),
        ElementOp::delete(F, T, "v4", v4("10.88.0.7")),
        ElementOp::add(F, T, "v4", v4("10.88.0.8")),
        ElementOp::delete(F, T, "missing", v4("10.88.0.8")),
    ])
    .unwrap();
    assert_eq!(nft_elements(&ns, "set", "v4"), ["10.88.0.3", "10.88.0.8"]);
    assert_eq!(nft.destroy_type, None);
    // A delete the kernel finds invalid either way is an error, and does not make us
    // give up on DESTROYSETELEM.
    nft.destroy_type = Some(NFT_MSG_DESTROYSETELEM);
    let err = nft
        .apply(&[ElementOp::delete(F, T, "v4", vec![1, 2, 3])])
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert_eq!(nft.destroy_type, Some(NFT_MSG_DESTROYSETELEM));
}

#[test]
fn a_batch_of_a_thousand_elements_is_one_transaction() {
    let Some((ns, mut nft)) = setup() else { return };
    let ips: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| key::ipv4_addr(Ipv4Addr::from(0x0a58_0000 + i)).to_vec())
        .collect();
    let adds: Vec<ElementOp> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            ElementOp::add(F, T, "v4", ip.clone()).with_comment(format!("container-{i:04} eth0"))
        })
        .collect();
    nft.apply(&adds).unwrap();
    let elements = nft.elements(F, T, "v4").unwrap();
    assert_eq!(elements.len(), 1000);
    let mut expected = ips.clone();
    expected.sort();
    assert_eq!(sorted_keys(&elements), expected);
    assert!(elements.iter().all(|e| {
        e.comment
            .as_deref()
            .is_some_and(|c| c.starts_with("container-"))
    }));
    assert_eq!(nft_elements(&ns, "set", "v4").len(), 1000);

    // Long concatenated keys with comments: more than one message's worth.
    let ifmacs: Vec<ElementOp> = (0..1000u32)
        .map(|i| {
            let [_, _, a, b] = i.to_be_bytes();
            let name = key::ifname(&format!("veth{i:08x}")).unwrap();
            let key = key::concat(&[&name, &key::ether_addr([0x0a, 0x58, 0, 0, a, b])]);
            ElementOp::add(F, T, "ifmac", key).with_comment("x".repeat(100))
        })
        .collect();
    nft.apply(&ifmacs).unwrap();
    assert_eq!(nft.elements(F, T, "ifmac").unwrap().len(), 1000);

    // Delete them all, plus some that are not there, in one batch.
    let mut dels: Vec<ElementOp> = ips
        .iter()
        .map(|ip| ElementOp::delete(F, T, "v4", ip.clone()))
        .collect();
    dels.push(ElementOp::delete(F, T, "v4", v4("192.0.2.1")));
    nft.apply(&dels).unwrap();
    assert!(nft.elements(F, T, "v4").unwrap().is_empty());
    // The same on the path for older kernels.
    nft.apply(&adds).unwrap();
    nft.destroy_type = None;
    nft.apply(&dels).unwrap();
    assert!(nft.elements(F, T, "v4").unwrap().is_empty());
}

#[test]
fn tables_and_sets_exist_until_deleted() {
    let Some((ns, mut nft)) = setup() else { return };
    assert!(nft.table_exists(F, T).unwrap());
    assert!(!nft.table_exists(Family::Ip, T).unwrap());
    assert!(!nft.table_exists(F, "other").unwrap());
    assert!(nft.set_exists(F, T, "v4").unwrap());
    assert!(nft.set_exists(F, T, "pm").unwrap());
    assert!(!nft.set_exists(F, T, "nope").unwrap());
    assert!(!nft.set_exists(F, "other", "v4").unwrap());

    // Applying the same structure again merges (the sets' elements stay).
    nft.apply(&[ElementOp::add(F, T, "v4", v4("10.88.0.2"))])
        .unwrap();
    apply_ruleset(
        Some(&ns),
        "table inet cni-test { set v4 { type ipv4_addr; }; }",
    )
    .unwrap();
    assert!(nft.has_element(F, T, "v4", &v4("10.88.0.2")).unwrap());

    nft.delete_table(F, T).unwrap();
    assert!(!nft.table_exists(F, T).unwrap());
    assert!(!nft.set_exists(F, T, "v4").unwrap());
    nft.delete_table(F, T).unwrap();
    let out = run_nft(Some(&ns), &["list", "ruleset"], None).unwrap();
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn rejected_rulesets_carry_nft_error_output() {
    if !skip_unless_root() {
        return;
    }
    let ns = NetNs::new_unnamed().unwrap();
    let err = apply_ruleset(Some(&ns), "table inet t { set s { type nonsense; } }").unwrap_err();
    assert!(matches!(err, Error::NftTool { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("apply nftables ruleset: "), "{msg}");
    assert!(msg.contains("nonsense"), "{msg}");
    // Nothing of it was applied.
    let mut nft = Nft::in_netns(&ns).unwrap();
    assert!(!nft.table_exists(F, "t").unwrap());
}

#[test]
fn sockets_and_rulesets_stay_in_their_namespace() {
    let Some((ns, _)) = setup() else { return };
    let other = NetNs::new_unnamed().unwrap();
    let mut in_other = Nft::in_netns(&other).unwrap();
    assert!(!in_other.table_exists(F, T).unwrap());
    assert!(Nft::in_netns(&ns).unwrap().table_exists(F, T).unwrap());
}

/// Prints (never asserts) what adding and deleting one element costs in an empty set
/// and in one holding 1,000 elements. Run with `--nocapture` to see it.
#[test]
fn cost_of_one_element_does_not_depend_on_the_set_size() {
    let Some((_ns, mut nft)) = setup() else {
        return;
    };
    let probe = |nft: &mut Nft| -> (Duration, Duration) {
        const ROUNDS: usize = 200;
        let ip = v4("10.99.0.1");
        let add = [ElementOp::add(F, T, "v4", ip.clone()).with_comment("probe")];
        let del = [ElementOp::delete(F, T, "v4", ip)];
        let (mut adds, mut dels) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let start = Instant::now();
            nft.apply(&add).unwrap();
            adds.push(start.elapsed());
            let start = Instant::now();
            nft.apply(&del).unwrap();
            dels.push(start.elapsed());
        }
        adds.sort();
        dels.sort();
        (adds[ROUNDS / 2], dels[ROUNDS / 2])
    };
    let (add_empty, del_empty) = probe(&mut nft);
    let fill: Vec<ElementOp> = (0..1000u32)
        .map(|i| ElementOp::add(F, T, "v4", key::ipv4_addr(Ipv4Addr::from(0x0a58_0000 + i))))
        .collect();
    nft.apply(&fill).unwrap();
    let (add_full, del_full) = probe(&mut nft);
    let start = Instant::now();
    let n = nft.elements(F, T, "v4").unwrap().len();
    let dump = start.elapsed();
    let start = Instant::now();
    nft.has_element(F, T, "v4", &v4("10.88.1.0")).unwrap();
    let get = start.elapsed();
    eprintln!(
        "nft element cost (median of 200): add {add_empty:?} / delete {del_empty:?} in an \
         empty set; add {add_full:?} / delete {del_full:?} with 1000 elements; dump of {n} \
         elements {dump:?}; single get {get:?}"
    );
}

#[test]
fn comments_round_trip_through_user_data() {
    let data = encode_comment("hello");
    assert_eq!(data, b"\x00\x06hello\x00");
    assert_eq!(decode_comment(&data).as_deref(), Some("hello"));
    // Other TLVs before it are skipped; truncated data is no comment.
    let mut other = vec![1, 4, 0, 0, 0, 1];
    other.extend(&data);
    assert_eq!(decode_comment(&other).as_deref(), Some("hello"));
    assert_eq!(decode_comment(&[0, 9, b'a']), None);
    assert_eq!(decode_comment(&[]), None);
}

#[test]
fn long_element_lists_are_split_under_the_attribute_limit() {
    let ops: Vec<ElementOp> = (0..3000u32)
        .map(|i| ElementOp::add(F, T, "ifmac", vec![0u8; 24]).with_comment(format!("{i:0100}")))
        .collect();
    let refs: Vec<&ElementOp> = ops.iter().collect();
    let groups = group(&refs);
    assert!(groups.len() > 1);
    assert_eq!(groups.iter().map(|g| g.ops.len()).sum::<usize>(), 3000);
    for g in &groups {
        let bytes: usize = g.ops.iter().map(|i| element_size(&ops[*i])).sum();
        assert!(bytes <= MAX_ELEMENTS_BYTES);
    }
    // Kind or set changes start a new group; order is kept.
    let mixed = [
        ElementOp::add(F, T, "a", vec![1]),
        ElementOp::add(F, T, "a", vec![2]),
        ElementOp::delete(F, T, "a", vec![1]),
        ElementOp::add(F, T, "b", vec![1]),
        ElementOp::add(F, T, "a", vec![3]),
    ];
    let refs: Vec<&ElementOp> = mixed.iter().collect();
    let groups: Vec<Vec<usize>> = group(&refs).into_iter().map(|g| g.ops).collect();
    assert_eq!(groups, [vec![0, 1], vec![2], vec![3], vec![4]]);
}

#[test]
fn dumps_right_after_growing_a_set_are_complete() {
    let Some((_ns, mut nft)) = setup() else {
        return;
    };
    for round in 0..10u32 {
        let fill: Vec<ElementOp> = (0..1000u32)
            .map(|i| {
                let ip = Ipv4Addr::from(0x0a00_0000 + round * 1000 + i);
                ElementOp::add(F, T, "v4", key::ipv4_addr(ip)).with_comment(format!("c{i:040}"))
            })
            .collect();
        nft.apply(&fill).unwrap();
        let start = Instant::now();
        let elements = nft.elements(F, T, "v4").unwrap();
        eprintln!(
            "round {round}: {} elements in {:?}",
            elements.len(),
            start.elapsed()
        );
        let n = (round as usize + 1) * 1000;
        assert_eq!(elements.len(), n);
        let mut keys = sorted_keys(&elements);
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
