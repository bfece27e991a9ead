//! TEST FIXTURE — a transform that misbehaves on purpose, so the host's tests
//! can show that its sandbox holds: a misbehaving transform costs one
//! rejected batch and nothing else. Never use it in a real pipeline.
//!
//! Variable `mode`:
//! - `loop`: spins forever (until the host's fuel budget runs out);
//! - `memory`: allocates and touches 1 MiB after 1 MiB until an allocation
//!   fails (the host's memory cap, 16 MiB by default), then traps;
//! - `trap`: executes `unreachable`;
//! - `refuse`: returns `Err("refused on purpose")`;
//! - anything else, or unset: passes the batch through unchanged.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::alloc::{alloc, handle_alloc_error, Layout};
use alloc::string::String;
use alloc::vec::Vec;
use core::hint::black_box;
use cromflag_transform::{export_transform, variable, Batch, Transform};

struct Faulty;

impl Transform for Faulty {
    fn transform(_device: &str, batch: Batch) -> Result<Batch, String> {
        match variable("mode").as_deref() {
            Some("loop") => spin(),
            Some("memory") => exhaust_memory(),
            Some("trap") => trap(),
            Some("refuse") => Err("refused on purpose".into()),
            _ => Ok(batch),
        }
    }
}

export_transform!(Faulty);

/// An infinite loop the optimizer must keep: every turn goes through
/// `black_box` and a volatile read.
fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
        // SAFETY: reading a live local.
        unsafe { core::ptr::read_volatile(&turns) };
    }
}

/// Allocates 1 MiB blocks, writing every 4 KiB of each so the pages are really
/// used, and keeps them all; when the allocator fails (memory.grow refused at
/// the host's cap), traps.
fn exhaust_memory() -> ! {
    const BLOCK: usize = 1 << 20;
    let layout = Layout::from_size_align(BLOCK, 16).unwrap();
    let mut blocks: Vec<*mut u8> = Vec::new();
    loop {
        // SAFETY: the layout is non-zero; a null result is handled.
        let block = unsafe { alloc(layout) };
        if block.is_null() {
            handle_alloc_error(layout); // traps (panic → unreachable)
        }
        for offset in (0..BLOCK).step_by(4096) {
            // SAFETY: within the block just allocated.
            unsafe { core::ptr::write_volatile(block.add(offset), offset as u8 | 1) };
        }
        blocks.push(block);
        black_box(&blocks);
    }
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("trap");
}
