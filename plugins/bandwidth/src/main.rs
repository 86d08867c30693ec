fn main() {
    cni::skel::run("bandwidth", &bandwidth::Bandwidth);
}
