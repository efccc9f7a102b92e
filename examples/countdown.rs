//! The countdown as a hand-written iterator: the listing the appendix "How this book is tested"
//! includes by anchor. Run it with `cargo run --example countdown`.

// ANCHOR: countdown
/// Counts down from the number it holds to 1.
struct Countdown(u32);

impl Iterator for Countdown {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let current = self.0;
        self.0 = current.checked_sub(1)?;
        Some(current).filter(|&n| n > 0)
    }
}
// ANCHOR_END: countdown

fn main() {
    println!("{:?}", Countdown(3).collect::<Vec<_>>());
}
