fn main() {
    cni::skel::run("ipvlan", &ipvlan::Ipvlan);
}
