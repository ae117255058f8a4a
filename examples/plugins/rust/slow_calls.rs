//! slow_calls: the example filter plugin in Rust. Events named
//! python.call.stop are kept iff their measurement duration (int or float)
//! is >= config min_duration_ns (default 0); every other event is kept.
#![no_std]

use core::sync::atomic::{AtomicI64, Ordering};
use snakepipe::{Config, Event, Number};

static MIN_DURATION: AtomicI64 = AtomicI64::new(0);

fn init(c: &Config) -> Result<(), i32> {
    c.only(&[b"min_duration_ns"])?;
    MIN_DURATION.store(c.i64(b"min_duration_ns", 0)?, Ordering::Relaxed);
    Ok(())
}

fn keep(e: &Event) -> bool {
    if e.name != b"python.call.stop" {
        return true;
    }
    let min = MIN_DURATION.load(Ordering::Relaxed);
    match e.number(b"duration") {
        Some(Number::Int(d)) => d >= min,
        Some(Number::Float(d)) => d >= min as f64,
        None => false,
    }
}

snakepipe::init!(init);
snakepipe::filter!(keep);
