/// The "Using forkr" guide, compiled in so that it matches this binary.
pub const GUIDE: &str = include_str!("../../../docs/guide.md");

pub fn run() -> String {
    GUIDE.to_owned()
}
