fn main() {
    cni::skel::run("portmap", &portmap::Portmap);
}
