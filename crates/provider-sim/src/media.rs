//! The simulated CDNs' files: real PNG images for Midjourney's results (a grid of four
//! differently coloured images, its single images, an upscale), and deterministic bytes
//! for every other file (audio, video, covers), so a test can check that what it gets
//! back is what the upstream served.
//!
//! The images are smaller than Midjourney's (a 512-pixel grid where Midjourney's is 2048)
//! to keep tests quick; their proportions follow the prompt's `--ar`.

use std::io::Cursor;

/// One image a Midjourney job produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MjImage {
    /// Width and height of the whole file.
    pub width: u32,
    pub height: u32,
    /// Picks the colours.
    pub seed: u64,
    /// Which image: `None` for a grid of four, `Some(i)` for image `i` (0–3) alone.
    pub part: Option<u8>,
}

/// The grid's width and height for a prompt: 512 on the long side, the other side by
/// `--ar W:H` / `--aspect W:H` (1:1 without), both even.
pub(crate) fn grid_size(prompt: &str) -> (u32, u32) {
    let mut words = prompt.split_whitespace();
    let mut ratio = (1u32, 1u32);
    while let Some(w) = words.next() {
        if w != "--ar" && w != "--aspect" {
            continue;
        }
        let parsed = words
            .next()
            .and_then(|r| r.split_once(':'))
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
        if let Some((a, b)) = parsed.filter(|(a, b)| *a > 0 && *b > 0) {
            ratio = (a, b);
        }
    }
    let (a, b) = ratio;
    let even = |x: u32| (x.max(8) / 2) * 2;
    if a >= b {
        (512, even(512 * b / a))
    } else {
        (even(512 * a / b), 512)
    }
}

/// The colour of image `i` of a job.
fn colour(seed: u64, i: u8) -> [u8; 3] {
    let h = seed
        .wrapping_add(u64::from(i) + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    [(h >> 8) as u8, (h >> 24) as u8, (h >> 40) as u8]
}

/// The PNG file of an image.
pub(crate) fn png(img: MjImage) -> Vec<u8> {
    let (w, h) = (img.width.max(2), img.height.max(2));
    let pixels = image::RgbImage::from_fn(w, h, |x, y| {
        let i = match img.part {
            Some(i) => i,
            None => u8::from(x >= w / 2) + 2 * u8::from(y >= h / 2),
        };
        // A little texture, so the file is an image and not a flat colour.
        let mut c = colour(img.seed, i);
        c[2] = c[2].wrapping_add(((x / 16 + y / 16) % 2) as u8 * 40);
        image::Rgb(c)
    });
    let mut out = Cursor::new(Vec::new());
    // Writing a PNG to memory cannot fail for an RGB image.
    let _ = pixels.write_to(&mut out, image::ImageFormat::Png);
    out.into_inner()
}

/// Deterministic bytes of any other file: its name, repeated to 4 KiB.
pub(crate) fn bytes_of(name: &str) -> Vec<u8> {
    let unit = format!("simulated file {name}\n");
    unit.bytes().cycle().take(4096).collect()
}

/// The media type of a file by its extension.
pub(crate) fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map_or("", |(_, e)| e) {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}
