fn main() {
    cni::skel::run("dnsname", &dnsname::DnsName);
}
