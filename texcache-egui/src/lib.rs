//! # texcache-egui
//!
//! An egui [`TextureLoader`] backed by texcache's GPU tier, so that the images an egui
//! application draws cost a byte budget, load without blocking a frame, and leave when the
//! cache evicts them rather than when the application remembers to call `forget`.
//!
//! egui's own image loaders keep every image they ever loaded until `forget` is called. This
//! loader keeps nothing the cache does not: each image drawn in a pass is a held
//! [`texcache::TextureHandle`]; at the end of the pass, images not drawn are let go, and the
//! cache decides what stays (least recently released first, within `gpu.budget`). The wgpu
//! view of each texture is registered with [`egui_wgpu::Renderer::register_native_texture`]
//! once, and the registration is freed when the cache evicts the texture.
//!
//! - **URIs**: `texcache://photos/cat.jpg` (an href resolved against the cache's `mediadir`),
//!   `file:///abs/path.png`, and plain paths (`photos/cat.jpg`, `/abs/path.png`). Other
//!   schemes (`bytes://`, `http://`) are left to egui's other loaders.
//! - **Sizes**: egui's [`SizeHint`] becomes a fitted request (the picture scaled down, never
//!   up, into that box), so a thumbnail costs thumbnail bytes: see [`fit_of`].
//! - **Never blocking**: a texture not resident is [`TexturePoll::Pending`] while a loader
//!   thread (`loader.threads`) decodes and uploads it; egui is asked to repaint when it is
//!   ready. A file that fails to load is egui's [`LoadError::Loading`] with texcache's message
//!   (the href and the cause), shown where the image would be.
//! - **Only hits**: a pass whose images are all drawn already takes no lock of the cache and
//!   allocates nothing in texcache.
//!
//! Installing is one call, with the wgpu render state egui draws with (eframe's
//! `CreationContext::wgpu_render_state`):
//!
//! ```no_run
//! # fn setup(cc: &eframe::CreationContext<'_>) {
//! let cache = texcache::Cache::from_env().expect("a valid TEXCACHE_CONFIG");
//! let render_state = cc.wgpu_render_state.as_ref().expect("eframe's wgpu renderer");
//! let loader = texcache_egui::install(&cc.egui_ctx, render_state, cache);
//! // Then, in the UI: ui.image("texcache://photos/cat.jpg");
//! # let _ = loader;
//! # }
//! ```
//!
//! [`TextureLoader`]: egui::load::TextureLoader

use egui::load::{LoadError, SizeHint, SizedTexture, TextureLoadResult, TexturePoll};
use egui::mutex::Mutex;
use egui::{TextureFilter, TextureId, TextureOptions, TextureWrapMode, Vec2};
use hashbrown::{Equivalent, HashMap};
use std::borrow::Cow;
use std::sync::Arc;
use texcache::gpu::TextureWatch;
use texcache::{Cache, Request, TextureHandle};

/// Registers a [`Loader`] over `cache` with `ctx`, binding the cache's GPU tier to the device
/// egui draws with (`render_state`), and returns it (for [`Loader::stats`]): the one call an
/// application makes. It is [`Loader::bound`] and `ctx.add_texture_loader`.
pub fn install(
    ctx: &egui::Context,
    render_state: &egui_wgpu::RenderState,
    cache: Cache,
) -> Arc<Loader> {
    let loader = Loader::bound(cache, render_state);
    ctx.add_texture_loader(loader.clone());
    loader
}

/// The fitted box texcache is asked for, for egui's size hint: `None` (the picture at its
/// own size) for a scale, else the box, each side rounded up to a multiple of 64 pixels above
/// 256 (so that resizing a window does not decode the picture again at every pixel of it).
/// A side egui leaves open ([`SizeHint::Width`], [`SizeHint::Height`]) is unbounded.
///
/// ```
/// use egui::load::SizeHint;
/// assert_eq!(texcache_egui::fit_of(SizeHint::Size { width: 160, height: 120, maintain_aspect_ratio: true }), Some((160, 120)));
/// assert_eq!(texcache_egui::fit_of(SizeHint::Size { width: 1000, height: 700, maintain_aspect_ratio: true }), Some((1024, 704)));
/// assert_eq!(texcache_egui::fit_of(SizeHint::Width(100)), Some((100, u32::MAX)));
/// assert_eq!(texcache_egui::fit_of(SizeHint::Scale(1.0.into())), None);
/// ```
pub fn fit_of(hint: SizeHint) -> Option<(u32, u32)> {
    fn side(n: u32) -> u32 {
        let n = n.max(1);
        if n <= 256 {
            n
        } else {
            n.div_ceil(64).saturating_mul(64)
        }
    }
    match hint {
        SizeHint::Scale(_) => None,
        SizeHint::Width(w) => Some((side(w), u32::MAX)),
        SizeHint::Height(h) => Some((u32::MAX, side(h))),
        SizeHint::Size { width, height, .. } => Some((side(width), side(height))),
    }
}

/// The href of `uri` for the cache, or `None` for a scheme this loader leaves to others.
///
/// ```
/// use texcache_egui::href_of;
/// assert_eq!(href_of("texcache://photos/cat.jpg").as_deref(), Some("photos/cat.jpg"));
/// assert_eq!(href_of("file:///srv/media/a%20b.png").as_deref(), Some("/srv/media/a b.png"));
/// assert_eq!(href_of("photos/cat.jpg").as_deref(), Some("photos/cat.jpg"));
/// assert_eq!(href_of("bytes://logo.png"), None);
/// // egui's frame suffix on pictures that may be animated: frame 0 is the picture.
/// assert_eq!(href_of("texcache://a.webp#0").as_deref(), Some("a.webp"));
/// assert_eq!(href_of("texcache://a.gif#3"), None);
/// assert_eq!(href_of("texcache://a.png#0").as_deref(), Some("a.png#0"));
/// ```
pub fn href_of(uri: &str) -> Option<Cow<'_, str>> {
    // egui asks for GIFs and WebPs (which may be animated) as `URI#FRAME`, frame 0 first and,
    // as this loader registers no frame durations, only: frame 0 is the picture.
    let uri = match uri.rsplit_once('#') {
        Some((base, frame)) if is_animation(base) && is_number(frame) => {
            if frame.bytes().any(|b| b != b'0') {
                return None; // a later frame: not what this loader serves
            }
            base
        }
        _ => uri,
    };
    if let Some(href) = uri.strip_prefix("texcache://") {
        return Some(Cow::Borrowed(href));
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return Some(percent_decoded(path));
    }
    (!uri.contains("://")).then_some(Cow::Borrowed(uri))
}

/// Whether `uri` names a file egui treats as a possible animation (by its extension, as
/// egui's own `is_animated_image_uri`): GIF and WebP.
fn is_animation(uri: &str) -> bool {
    let ext = uri.rsplit_once('.').map_or("", |(_, e)| e);
    ext.eq_ignore_ascii_case("gif") || ext.eq_ignore_ascii_case("webp")
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `%XX` escapes of a `file://` URI's path, decoded (invalid ones are kept as they are).
fn percent_decoded(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// What the loader holds now (see [`Loader::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// egui textures registered with the renderer (drawn this pass, or resident in the cache).
    pub registered: usize,
    /// Textures held because they were drawn in the current pass.
    pub held: usize,
    /// Loads in progress.
    pub pending: usize,
    /// URIs whose load failed (kept until `forget`, so that they are not retried every pass).
    pub failed: usize,
    /// Registrations freed because the cache evicted their texture.
    pub freed_after_eviction: u64,
}

/// The texture loader: see the [crate docs](crate).
pub struct Loader {
    cache: Cache,
    device: egui_wgpu::wgpu::Device,
    renderer: Arc<egui::mutex::RwLock<egui_wgpu::Renderer>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// This loader's pass counter: entries drawn in the current pass carry it.
    pass: u64,
    freed_after_eviction: u64,
}

/// One image as egui asked for it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    uri: String,
    fit: Option<(u32, u32)>,
    options: TextureOptions,
}

/// A [`Key`] borrowed from egui's call, to look up without allocating: the same fields in the
/// same order, so the same hash.
#[derive(Clone, Copy, Hash)]
struct KeyRef<'a> {
    uri: &'a str,
    fit: Option<(u32, u32)>,
    options: TextureOptions,
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.uri == key.uri && self.fit == key.fit && self.options == key.options
    }
}

impl KeyRef<'_> {
    fn owned(&self) -> Key {
        Key {
            uri: self.uri.to_owned(),
            fit: self.fit,
            options: self.options,
        }
    }
}

enum Entry {
    /// A loader thread is loading it.
    Pending {
        request: Request<TextureHandle>,
        pass: u64,
    },
    /// Registered with egui's renderer; held while drawn in the current pass.
    Shown(Shown),
    /// Its load failed: the message, until `forget`.
    Failed(String),
}

struct Shown {
    id: TextureId,
    size: Vec2,
    /// Held while drawn in the current pass; `None` after a pass it was not drawn in.
    handle: Option<TextureHandle>,
    watch: TextureWatch,
    bytes: u64,
    pass: u64,
}

impl Loader {
    /// A loader over `cache` that registers textures with `render_state`'s renderer, with the
    /// cache bound ([`Cache::bind_gpu`]) to a [`texcache::Gpu`] made from the render state's
    /// device and queue, so that the GPU tier's textures are egui's to draw (gray pictures
    /// uploaded as RGBA: [`texcache::Gpu::with_gray_as_rgba`]). Add it to a
    /// context with `ctx.add_texture_loader` ([`install`] does both).
    pub fn bound(cache: Cache, render_state: &egui_wgpu::RenderState) -> Arc<Loader> {
        // egui samples every texture as RGBA: gray pictures go up as RGBA too.
        let gpu = texcache::Gpu::from_adapter_device(
            &render_state.adapter,
            render_state.device.clone(),
            render_state.queue.clone(),
        )
        .with_gray_as_rgba();
        cache.bind_gpu(Arc::new(gpu));
        Arc::new(Loader {
            cache,
            device: render_state.device.clone(),
            renderer: render_state.renderer.clone(),
            state: Mutex::new(State::default()),
        })
    }

    /// The cache behind the loader.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// What the loader holds now.
    pub fn stats(&self) -> LoaderStats {
        let state = self.state.lock();
        let mut s = LoaderStats {
            freed_after_eviction: state.freed_after_eviction,
            ..LoaderStats::default()
        };
        for entry in state.entries.values() {
            match entry {
                Entry::Pending { .. } => s.pending += 1,
                Entry::Failed(_) => s.failed += 1,
                Entry::Shown(shown) => {
                    s.registered += 1;
                    s.held += usize::from(shown.handle.is_some());
                }
            }
        }
        s
    }

    fn register(&self, texture: &TextureHandle, options: TextureOptions, pass: u64) -> Shown {
        // egui blends in gamma space and samples its textures as stored bytes (Rgba8Unorm);
        // the cache's are sRGB, so egui gets a view that reads them as they are stored.
        let gamma = texture.gamma_view();
        let id = self
            .renderer
            .write()
            .register_native_texture_with_sampler_options(
                &self.device,
                gamma.as_ref().unwrap_or(texture.view()),
                sampler(options),
            );
        Shown {
            id,
            size: Vec2::new(texture.width() as f32, texture.height() as f32),
            watch: texture.watch(),
            bytes: texcache::tier::Resource::bytes(&**texture),
            handle: Some(texture.clone()),
            pass,
        }
    }

    fn free(&self, id: TextureId) {
        self.renderer.write().free_texture(&id);
    }

    /// The outcome of a request for `key`, as egui wants it, updating `entry`.
    fn settle(
        &self,
        ctx: &egui::Context,
        key: &KeyRef<'_>,
        href: &str,
        pass: u64,
        state: &mut State,
    ) -> TextureLoadResult {
        let mut request = self.cache.request_texture(href, key.fit);
        match request.try_get() {
            Some(Ok(texture)) => {
                let shown = self.register(&texture, key.options, pass);
                let poll = ready(&shown);
                state.entries.insert(key.owned(), Entry::Shown(shown));
                poll
            }
            Some(Err(e)) => {
                let message = e.to_string();
                state
                    .entries
                    .insert(key.owned(), Entry::Failed(message.clone()));
                Err(LoadError::Loading(message))
            }
            None => {
                let ctx = ctx.clone();
                request.on_ready(move || ctx.request_repaint());
                state
                    .entries
                    .insert(key.owned(), Entry::Pending { request, pass });
                Ok(TexturePoll::Pending { size: None })
            }
        }
    }
}

fn ready(shown: &Shown) -> TextureLoadResult {
    Ok(TexturePoll::Ready {
        texture: SizedTexture::new(shown.id, shown.size),
    })
}

/// egui's texture options as a wgpu sampler (egui-wgpu samples native textures with it).
fn sampler(options: TextureOptions) -> egui_wgpu::wgpu::SamplerDescriptor<'static> {
    use egui_wgpu::wgpu::{AddressMode, FilterMode, MipmapFilterMode, SamplerDescriptor};
    let filter = |f: TextureFilter| match f {
        TextureFilter::Nearest => FilterMode::Nearest,
        TextureFilter::Linear => FilterMode::Linear,
    };
    let address = match options.wrap_mode {
        TextureWrapMode::ClampToEdge => AddressMode::ClampToEdge,
        TextureWrapMode::Repeat => AddressMode::Repeat,
        TextureWrapMode::MirroredRepeat => AddressMode::MirrorRepeat,
    };
    SamplerDescriptor {
        label: Some("texcache-egui sampler"),
        mag_filter: filter(options.magnification),
        min_filter: filter(options.minification),
        mipmap_filter: match options.mipmap_mode {
            Some(TextureFilter::Linear) => MipmapFilterMode::Linear,
            _ => MipmapFilterMode::Nearest,
        },
        address_mode_u: address,
        address_mode_v: address,
        ..SamplerDescriptor::default()
    }
}

impl egui::load::TextureLoader for Loader {
    fn id(&self) -> &str {
        concat!(module_path!(), "::Loader")
    }

    fn load(
        &self,
        ctx: &egui::Context,
        uri: &str,
        options: TextureOptions,
        size_hint: SizeHint,
    ) -> TextureLoadResult {
        let Some(href) = href_of(uri) else {
            return Err(LoadError::NotSupported);
        };
        let key = KeyRef {
            uri,
            fit: fit_of(size_hint),
            options,
        };
        let mut state = self.state.lock();
        let pass = state.pass;
        let Some(entry) = state.entries.get_mut(&key) else {
            return self.settle(ctx, &key, &href, pass, &mut state);
        };
        match entry {
            Entry::Failed(message) => Err(LoadError::Loading(message.clone())),
            Entry::Shown(shown) if shown.handle.is_some() => {
                shown.pass = pass;
                ready(shown)
            }
            Entry::Shown(shown) => {
                // Not drawn last pass. Still resident, as the watch tells, it is a hit on the
                // very texture registered; evicted, its registration goes and it loads anew.
                if shown.watch.is_alive() {
                    if let Some(Ok(texture)) = self.cache.request_texture(&href, key.fit).try_get()
                    {
                        if shown.watch.watches(&texture) {
                            shown.handle = Some(texture);
                            shown.pass = pass;
                            return ready(shown);
                        }
                    }
                }
                let id = shown.id;
                self.free(id);
                state.freed_after_eviction += 1;
                state.entries.remove(&key);
                self.settle(ctx, &key, &href, pass, &mut state)
            }
            Entry::Pending {
                request,
                pass: seen,
            } => match request.try_get() {
                None => {
                    *seen = pass;
                    Ok(TexturePoll::Pending { size: None })
                }
                Some(Ok(texture)) => {
                    let shown = self.register(&texture, key.options, pass);
                    let poll = ready(&shown);
                    *entry = Entry::Shown(shown);
                    poll
                }
                Some(Err(e)) => {
                    let message = e.to_string();
                    *entry = Entry::Failed(message.clone());
                    Err(LoadError::Loading(message))
                }
            },
        }
    }

    fn forget(&self, uri: &str) {
        let mut freed = Vec::new();
        self.state.lock().entries.retain(|key, entry| {
            if key.uri != uri {
                return true;
            }
            if let Entry::Shown(shown) = entry {
                freed.push(shown.id);
            }
            false
        });
        for id in freed {
            self.free(id);
        }
        if let Some(href) = href_of(uri) {
            // Every size of it, so that it loads from the file again.
            self.cache.remove(&href);
        }
    }

    fn forget_all(&self) {
        let entries = std::mem::take(&mut self.state.lock().entries);
        for (key, entry) in entries {
            if let Entry::Shown(shown) = entry {
                self.free(shown.id);
            }
            if let Some(href) = href_of(&key.uri) {
                self.cache.remove(&href);
            }
        }
    }

    /// Lets go of what was not drawn in this pass (the cache may now evict it), drops loads
    /// nobody asked about in this pass, and frees the registrations of evicted textures.
    fn end_pass(&self, _pass_index: u64) {
        let mut freed = Vec::new();
        let mut state = self.state.lock();
        let pass = state.pass;
        state.entries.retain(|_, entry| match entry {
            Entry::Shown(shown) => {
                if shown.pass != pass {
                    shown.handle = None;
                }
                if shown.handle.is_none() && !shown.watch.is_alive() {
                    freed.push(shown.id);
                    return false;
                }
                true
            }
            // Its outcome (a held texture) is dropped with it; asked again, it is a hit.
            Entry::Pending { pass: seen, .. } => *seen == pass,
            Entry::Failed(_) => true,
        });
        state.freed_after_eviction += freed.len() as u64;
        state.pass += 1;
        drop(state);
        for id in freed {
            self.free(id);
        }
    }

    /// The GPU bytes of the textures this loader has registered (held or resident).
    fn byte_size(&self) -> usize {
        let state = self.state.lock();
        state
            .entries
            .values()
            .map(|e| match e {
                Entry::Shown(s) if s.handle.is_some() || s.watch.is_alive() => s.bytes as usize,
                _ => 0,
            })
            .sum()
    }
}
