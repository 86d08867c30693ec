fn main() {
    cni::skel::run("macvlan", &macvlan::Macvlan);
}
