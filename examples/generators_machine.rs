//! The generator `launch(n)` of the chapter "Generators", written by hand as the state machine that
//! a compiler makes of a generator. Run it with `cargo run --example generators_machine`.

// ANCHOR: machine
/// Where a `launch(n)` generator stands: one variant per place it can be paused, each holding only
/// the locals that are still needed after that place.
enum State {
    /// Called but not started, like GEN_CREATED: holds the arguments.
    Created { n: u32 },
    /// Paused at `yield "ready"`.
    AfterReady { n: u32 },
    /// Paused at `yield str(n)`, inside the loop.
    InLoop { n: u32 },
    /// Paused at `yield "liftoff"`: no local is needed after it.
    AfterLiftoff,
    /// Returned, like GEN_CLOSED.
    Closed,
}

/// The generator object: nothing but its state.
struct Launch {
    state: State,
}

/// Like calling a generator function: builds the object and runs none of the body.
fn launch(n: u32) -> Launch {
    Launch { state: State::Created { n } }
}

impl Launch {
    /// The loop test `while n > 0`, reached from two places: after "ready" and after `n -= 1`.
    fn loop_head(&mut self, n: u32) -> Option<String> {
        if n > 0 {
            self.state = State::InLoop { n };
            Some(n.to_string())
        } else {
            self.state = State::AfterLiftoff;
            Some("liftoff".to_string())
        }
    }
}

impl Iterator for Launch {
    type Item = String;

    /// One `next()`: resume from the saved state, run to the next `yield`, save the new state.
    fn next(&mut self) -> Option<String> {
        // The state is taken out while the body runs; if the body panicked, the generator would be closed.
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Created { n } => {
                self.state = State::AfterReady { n };
                Some("ready".to_string())
            }
            State::AfterReady { n } => self.loop_head(n),
            State::InLoop { n } => self.loop_head(n - 1),
            State::AfterLiftoff | State::Closed => None,
        }
    }
}
// ANCHOR_END: machine

fn main() {
    println!("{:?}", launch(2).collect::<Vec<_>>());
}
