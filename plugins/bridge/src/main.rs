fn main() {
    cni::skel::run("bridge", &bridge::Bridge);
}
