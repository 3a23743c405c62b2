//! `texcache.Video` and `texcache.Frame`: video nodes and their frames.

use crate::args::*;
use crate::buffers::*;
use crate::errors::*;
use pyo3::exceptions::{PyStopIteration, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};
use texcache::video::{Frame as RsFrame, VideoNode};
use texcache::{Error, ErrorKind};

/// One decoded video frame: `time` (seconds), `index`, `planes()` (the Y, U, V arrays of a
/// YUV 4:2:0 frame, or one (h, w, 4) array of an RGBA one, without a copy) and `to_rgb()`
/// (an (h, w, 3) array, converted). The frame's buffer goes back to its node when the `Frame`
/// and every array of its planes are gone.
#[pyclass(frozen, module = "texcache._texcache")]
pub(crate) struct Frame {
    frame: Arc<RsFrame>,
}

#[pymethods]
impl Frame {
    #[getter]
    fn time(&self) -> f64 {
        self.frame.time()
    }
    #[getter]
    fn index(&self) -> u64 {
        self.frame.index()
    }
    #[getter]
    fn width(&self) -> u32 {
        self.frame.width()
    }
    #[getter]
    fn height(&self) -> u32 {
        self.frame.height()
    }
    #[getter]
    fn format(&self) -> &'static str {
        self.frame.format().name()
    }
    /// The planes as arrays over the frame's own memory.
    fn planes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let f = &self.frame;
        let (w, h) = (f.width() as i64, f.height() as i64);
        let plane = |ptr: *const u8, pw: i64, ph: i64, bpp: i64| -> PyResult<Bound<'py, PyAny>> {
            let (shape, strides) = layout(pw, ph, bpp);
            array(
                py,
                Pixels {
                    owner: Owner::Frame(f.clone()),
                    ptr,
                    shape,
                    strides,
                },
            )
        };
        match f.planes() {
            Some([y, u, v]) => {
                let (cw, ch) = ((w + 1) / 2, (h + 1) / 2);
                Ok(vec![
                    plane(y.as_ptr(), w, h, 1)?,
                    plane(u.as_ptr(), cw, ch, 1)?,
                    plane(v.as_ptr(), cw, ch, 1)?,
                ])
            }
            None => Ok(vec![plane(f.data().as_ptr(), w, h, 4)?]),
        }
    }
    /// The frame as an (h, w, 3) RGB array, upright: converted with the stream's matrix
    /// (BT.601 or BT.709) and range, as the GPU converts it, and turned by its rotation (so
    /// h and w are the displayed ones): a copy.
    fn to_rgb<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let f = self.frame.clone();
        let rgb = py.detach(move || f.to_rgb());
        let (w, h) = self.frame.display_size();
        array(py, Pixels::owned(rgb, vec![h as i64, w as i64, 3]))
    }
    fn __repr__(&self) -> String {
        format!(
            "<texcache.Frame {} at {:.3} s, {}x{} {}>",
            self.frame.index(),
            self.frame.time(),
            self.frame.width(),
            self.frame.height(),
            self.frame.format().name()
        )
    }
}

/// A video node (§4): `play()`, `pause()`, `stop()`, `seek(t)`, `loop` and iteration over its
/// frames (`for frame in node:`), which waits for the decoder without holding the GIL.
#[pyclass(frozen, module = "texcache._texcache")]
pub(crate) struct Video {
    node: Mutex<VideoNode>,
    /// What the header said, and the href (read without the lock).
    info: texcache::video::VideoInfo,
    href: String,
    /// The process that opened it: in a child forked since, the lock may be held by a parent
    /// thread that was waiting for a frame, so the node is not touched there.
    pid: u32,
}

impl Video {
    pub(crate) fn of(node: VideoNode) -> Video {
        Video {
            info: node.info().clone(),
            href: node.href().to_owned(),
            node: Mutex::new(node),
            pid: std::process::id(),
        }
    }
    /// In a forked child, the library's error for a node of the parent's (whose lock a parent
    /// thread may hold); else nothing.
    fn check_process(&self) -> PyResult<()> {
        if std::process::id() == self.pid {
            return Ok(());
        }
        Err(py_err(Error::new(
            self.href.clone(),
            ErrorKind::Video {
                detail: "this video node was opened before the process forked: its decoder is the \
                     parent's; open the video again in this process"
                    .into(),
            },
        )))
    }
    /// The node, locked (see [`Video::check_process`]).
    fn node(&self) -> PyResult<std::sync::MutexGuard<'_, VideoNode>> {
        self.check_process()?;
        Ok(self.node.lock().expect("never poisoned"))
    }
    /// `f` on the node, without the GIL (see [`Video::check_process`]).
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut VideoNode) -> T + Send,
    ) -> PyResult<T> {
        self.check_process()?;
        Ok(py.detach(|| f(&mut self.node.lock().expect("never poisoned"))))
    }
}

#[pymethods]
impl Video {
    fn play(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.play())?.map_err(py_err)
    }
    fn pause(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.pause())?.map_err(py_err)
    }
    /// Stops decoding and frees the queue, the decoder and the frames not held.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.stop())
    }
    /// Makes the next frame the first whose time is at least `seconds`.
    fn seek(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(PyValueError::new_err(
                "seek: seconds must be finite and >= 0",
            ));
        }
        self.with(py, |n| n.seek(seconds))
    }
    /// Start again at the end of the stream.
    #[setter(r#loop)]
    fn set_loop(&self, looping: bool) -> PyResult<()> {
        self.node()?.set_looping(looping);
        Ok(())
    }
    #[getter]
    fn width(&self) -> u32 {
        self.info.width
    }
    #[getter]
    fn height(&self) -> u32 {
        self.info.height
    }
    #[getter]
    fn codec(&self) -> String {
        self.info.codec.clone()
    }
    /// The next frame, or None at the end of the stream (playing it first if stopped).
    fn next_frame(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        let got = self.with(py, |n| {
            if n.state() == texcache::video::State::Stopped {
                n.play()?;
            }
            n.next_frame()
        })?;
        Ok(got.map_err(py_err)?.map(|f| Frame { frame: Arc::new(f) }))
    }
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Frame> {
        self.next_frame(py)?
            .ok_or_else(|| PyStopIteration::new_err(()))
    }
    /// The node's §6 object (a dict).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.node()?.stats();
        json(py, &serde_json::to_string(&s).expect("stats serialise"))
    }
}
