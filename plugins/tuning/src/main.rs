fn main() {
    cni::skel::run("tuning", &tuning::Tuning);
}
