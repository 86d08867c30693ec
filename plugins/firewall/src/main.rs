fn main() {
    cni::skel::run("firewall", &firewall::Firewall);
}
