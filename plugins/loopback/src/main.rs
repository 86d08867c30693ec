fn main() {
    cni::skel::run("loopback", &loopback::Loopback);
}
