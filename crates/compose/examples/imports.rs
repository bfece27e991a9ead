fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        println!("{path}:");
        for i in cromflag_compose::imports(&bytes).unwrap() {
            println!("  {i}");
        }
    }
}
