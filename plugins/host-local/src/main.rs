fn main() {
    cni::skel::run("host-local", &host_local::HostLocal);
}
