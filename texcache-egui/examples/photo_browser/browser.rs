//! The photo browser's UI, egui only (no window): `main.rs` runs it in eframe, and
//! `tests/browser.rs` draws it headless on lavapipe.
//!
//! A scrolling grid of thumbnails (each a fitted texture of the thumbnail's size, through
//! [`texcache_egui`]); a click opens the picture at the size of the window (Escape or a click
//! closes it); `M` (or the button) shows the memory panel: the cache's memory over time
//! (`Cache::history`, drawn with egui_plot) and the stats table.

use egui_plot::{Legend, Line, Plot, PlotPoints};
use std::sync::Arc;

/// The browser's state.
pub struct Browser {
    /// The cache the loader draws from (its stats and history are shown).
    pub cache: texcache::Cache,
    /// The loader installed in egui's context.
    pub loader: Arc<texcache_egui::Loader>,
    /// The pictures, as `texcache://` URIs.
    pub uris: Vec<String>,
    /// A thumbnail's size in points.
    pub thumb: egui::Vec2,
    /// The picture open at window size, if any.
    pub open: Option<usize>,
    /// Whether the memory panel is shown.
    pub show_memory: bool,
    /// A scroll position (points) to jump to in the next pass; the grid scrolls by itself too.
    pub scroll_to: Option<f32>,
    /// The thumbnails drawn in the last pass: index and rectangle (points).
    pub drawn: Vec<(usize, egui::Rect)>,
    /// Where the memory panel's stats table was drawn in the last pass, and the panel's own
    /// rectangle (points).
    pub stats_table: Option<(egui::Rect, egui::Rect)>,
}

/// Gap between thumbnails, in points.
pub const GAP: f32 = 8.0;

impl Browser {
    /// A browser over the hrefs `names` of `cache`'s mediadir.
    pub fn new(
        cache: texcache::Cache,
        loader: Arc<texcache_egui::Loader>,
        names: &[String],
    ) -> Browser {
        Browser {
            cache,
            loader,
            uris: names.iter().map(|n| format!("texcache://{n}")).collect(),
            thumb: egui::vec2(160.0, 120.0),
            open: None,
            show_memory: false,
            scroll_to: None,
            drawn: Vec::new(),
            stats_table: None,
        }
    }

    /// Thumbnails a row of the grid holds in `width` points.
    pub fn columns(&self, width: f32) -> usize {
        (((width + GAP) / (self.thumb.x + GAP)).floor() as usize).max(1)
    }

    /// Draws one pass of the browser into `ui`.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.drawn.clear();
        if ui.input(|i| i.key_pressed(egui::Key::M)) {
            self.show_memory = !self.show_memory;
        }
        if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
            self.open = None;
        }
        egui::Panel::top("texcache-browser-top").show(ui, |ui| {
            ui.horizontal(|ui| {
                let s = self.cache.stats();
                ui.strong("texcache photo browser");
                ui.label(format!(
                    "{} pictures · GPU {} of {} · CPU {} of {} · {} textures registered",
                    self.uris.len(),
                    texcache::ByteSize(s.gpu.used),
                    texcache::ByteSize(s.gpu.budget),
                    texcache::ByteSize(s.cpu.used),
                    texcache::ByteSize(s.cpu.budget),
                    self.loader.stats().registered,
                ));
                if ui
                    .button(if self.show_memory {
                        "hide memory (M)"
                    } else {
                        "memory (M)"
                    })
                    .clicked()
                {
                    self.show_memory = !self.show_memory;
                }
            });
        });
        if self.show_memory {
            egui::Panel::right("texcache-browser-memory")
                .default_size(520.0)
                .show(ui, |ui| self.memory_panel(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| match self.open {
            Some(i) => self.viewer(ui, i),
            None => self.grid(ui),
        });
    }

    fn grid(&mut self, ui: &mut egui::Ui) {
        let columns = self.columns(ui.available_width());
        let rows = self.uris.len().div_ceil(columns);
        let mut area = egui::ScrollArea::vertical().auto_shrink([false, false]);
        if let Some(y) = self.scroll_to.take() {
            area = area.vertical_scroll_offset(y);
        }
        // Only the rows on screen are laid out, so only their images are asked for: the
        // loader lets go of the rest at the end of the pass.
        area.show_rows(ui, self.thumb.y + GAP, rows, |ui, range| {
            for row in range {
                ui.horizontal(|ui| {
                    ui.spacing_mut().item_spacing.x = GAP;
                    for i in row * columns..((row + 1) * columns).min(self.uris.len()) {
                        let image = egui::Image::new(self.uris[i].as_str())
                            .fit_to_exact_size(self.thumb)
                            .maintain_aspect_ratio(true)
                            .sense(egui::Sense::click());
                        let response = ui.add_sized(self.thumb, image);
                        self.drawn.push((i, response.rect));
                        if response.clicked() {
                            self.open = Some(i);
                        }
                    }
                });
                ui.add_space(GAP - ui.spacing().item_spacing.y);
            }
        });
    }

    fn viewer(&mut self, ui: &mut egui::Ui, i: usize) {
        let size = ui.available_size();
        let image = egui::Image::new(self.uris[i].as_str())
            .fit_to_exact_size(size)
            .maintain_aspect_ratio(true)
            .sense(egui::Sense::click());
        if ui
            .centered_and_justified(|ui| ui.add(image))
            .inner
            .clicked()
        {
            self.open = None;
        }
    }

    fn memory_panel(&mut self, ui: &mut egui::Ui) {
        let history = self.cache.history();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let series = |f: fn(&texcache::observe::history::Sample) -> u64| -> PlotPoints<'static> {
            history
                .iter()
                .map(|s| [s.t_ms as f64 / 1000.0, mib(f(s))])
                .collect()
        };
        ui.heading("memory over time (MiB)");
        Plot::new("texcache-memory")
            .legend(Legend::default())
            .height(240.0)
            .x_axis_label("seconds")
            .show(ui, |plot| {
                plot.line(Line::new("CPU tier used", series(|s| s.cpu_used)));
                plot.line(
                    Line::new("CPU budget", series(|s| s.cpu_budget))
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
                plot.line(Line::new("GPU tier used", series(|s| s.gpu_used)));
                plot.line(
                    Line::new("GPU budget", series(|s| s.gpu_budget))
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
                plot.line(Line::new("process RSS", series(|s| s.rss)));
            });
        ui.separator();
        ui.heading("stats");
        // The table in a monospace font small enough for its widest line to fit the panel
        // (not below 6 points: past that, the panel scrolls sideways).
        let table = self.cache.stats().to_string();
        let widest = table.lines().map(|l| l.chars().count()).max().unwrap_or(1) as f32;
        let base = egui::TextStyle::Monospace.resolve(ui.style());
        let advance = ui.ctx().fonts_mut(|f| f.glyph_width(&base, 'M')).max(1.0);
        let size = (base.size * ui.available_width() / (widest * advance)).clamp(6.0, base.size);
        let panel = ui.max_rect();
        egui::ScrollArea::horizontal().show(ui, |ui| {
            let shown = ui.add(
                egui::Label::new(egui::RichText::new(table).font(egui::FontId::monospace(size)))
                    .extend(),
            );
            self.stats_table = Some((shown.rect, panel));
        });
    }
}
