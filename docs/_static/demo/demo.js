// The "Draw a digit" page: LeNet-5 in the browser with ONNX Runtime Web (WebAssembly).
//
// window.lenet5Demo = {
//   ready: Promise<void>,                     // the model is loaded and has run once
//   classify(rgba, width, height): Promise<{label: string, probabilities: number[]}>,
//   preprocess(rgba, width, height): Uint8Array,  // 784 bytes: lenet5.preprocess.to_mnist
// }
// classify() rejects with an ImageError for a blank picture, as the Python library raises.
// Everything the page needs to know about the model (normalisation, class names) comes
// from lenet5.json, written by the docs build next to the model (docs/_ext/lenet5_demo.py).

import { ImageError, normalize, softmax, toMnist } from "./preprocess.js";

const here = new URL(".", import.meta.url);
const SIZE = 28;

async function fetchOk(name) {
  const response = await fetch(new URL(name, here));
  if (!response.ok) throw new Error(`cannot load ${name}: HTTP ${response.status}`);
  return response;
}

let settings = null; // lenet5.json, once loaded

async function start() {
  settings = await (await fetchOk("lenet5.json")).json();
  const ort = await import(new URL(settings.runtime, here).href);
  // One thread: no worker threads, so no cross-origin isolation headers are needed and any
  // static file server works. The WebAssembly is compiled from its bytes, which works
  // whatever MIME type the server gives .wasm files.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmBinary = new Uint8Array(await (await fetchOk(settings.wasm)).arrayBuffer());
  const model = new Uint8Array(await (await fetchOk("lenet5.onnx")).arrayBuffer());
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  const engine = { ort, session };
  await infer(engine, new Uint8Array(SIZE * SIZE)); // the first run is the slow one
  return engine;
}

let queue = Promise.resolve();

/** Run the model on 28x28 uint8 pixels; one run at a time, as the session requires. */
function infer({ ort, session }, pixels) {
  const input = new ort.Tensor("float32", normalize(pixels, settings.mean, settings.std), [
    1,
    1,
    SIZE,
    SIZE,
  ]);
  const run = queue.then(() => session.run({ [settings.input]: input }));
  queue = run.catch(() => {});
  return run.then((outputs) => softmax(outputs[settings.output].data));
}

const engine = start();

function preprocess(rgba, width, height) {
  if (settings === null) throw new Error("lenet5Demo is not ready yet: await lenet5Demo.ready");
  return toMnist(rgba, width, height, { verticalFirst: settings.pillowVerticalFirst });
}

async function classify(rgba, width, height) {
  const ready = await engine;
  const probabilities = await infer(ready, preprocess(rgba, width, height));
  let best = 0;
  probabilities.forEach((p, i) => {
    if (p > probabilities[best]) best = i;
  });
  return { label: settings.classes[best], probabilities };
}

window.lenet5Demo = { ready: engine.then(() => undefined), classify, preprocess };

// --- The drawing pad -----------------------------------------------------------------------

/** One row of bars per class: [{row, fill, value}], in class order. */
function buildBars(list, classes) {
  return classes.map((name) => {
    const row = document.createElement("li");
    row.className = "lenet5-demo__bar";
    const label = document.createElement("span");
    label.className = "lenet5-demo__class";
    label.textContent = name;
    const track = document.createElement("span");
    track.className = "lenet5-demo__track";
    const fill = document.createElement("span");
    fill.className = "lenet5-demo__fill";
    const value = document.createElement("span");
    value.className = "lenet5-demo__value";
    track.append(fill);
    row.append(label, track, value);
    list.append(row);
    return { row, fill, value };
  });
}

/**
 * The pad and its result panel. `root.dataset` tells automation where it stands: `state`
 * (loading, idle, busy, error), `drawn` (edits of the pad so far), `shown` (the edit the
 * result is for), `label` and `probabilities` (JSON) of the result shown.
 */
class DrawingPad {
  constructor(root) {
    this.root = root;
    this.pad = root.querySelector("canvas.lenet5-demo__pad");
    this.seen = root.querySelector("canvas.lenet5-demo__seen");
    this.status = root.querySelector(".lenet5-demo__status");
    this.ctx = this.pad.getContext("2d", { willReadFrequently: true });
    this.rows = [];
    this.drawn = 0;
    this.last = null; // where the pointer is while the button is down
    this.frame = 0;
    this.busy = false;
    this.again = false;
    const ratio = Math.min(Math.max(Math.round(window.devicePixelRatio || 1), 1), 2);
    this.pad.width = this.pad.height = 280 * ratio; // sharp strokes on high-density screens
    this.listen();
    this.clear();
    root.dataset.state = "loading";
    engine.then(
      () => this.start(),
      (error) => this.fail(`The model could not be loaded: ${error.message}`),
    );
  }

  start() {
    this.rows = buildBars(this.root.querySelector(".lenet5-demo__bars"), settings.classes);
    this.show(null);
    this.status.textContent = `Model ${settings.weights}, running in your browser.`;
    this.root.dataset.state = "idle";
    this.schedule();
  }

  fail(message) {
    this.status.textContent = message;
    this.root.dataset.state = "error";
  }

  touched() {
    this.drawn += 1;
    this.root.dataset.drawn = String(this.drawn);
  }

  clear() {
    this.ctx.fillStyle = "#000"; // MNIST's black sheet: the ink is white
    this.ctx.fillRect(0, 0, this.pad.width, this.pad.height);
    this.seen.getContext("2d").clearRect(0, 0, SIZE, SIZE);
    this.touched();
    this.show(null);
    this.root.dataset.shown = String(this.drawn);
  }

  show(result) {
    const root = this.root;
    root.classList.toggle("lenet5-demo--empty", result === null);
    root.querySelector(".lenet5-demo__label").textContent = result ? result.label : "?";
    const best = result ? Math.max(...result.probabilities) : 0;
    root.querySelector(".lenet5-demo__confidence").textContent = result
      ? `${(100 * best).toFixed(1)}% sure`
      : "Draw a digit";
    this.rows.forEach(({ row, fill, value }, i) => {
      const p = result ? result.probabilities[i] : 0;
      fill.style.width = `${(100 * p).toFixed(2)}%`;
      value.textContent = result ? `${(100 * p).toFixed(1)}%` : "";
      row.classList.toggle("lenet5-demo__bar--best", result !== null && p === best);
    });
    root.dataset.label = result ? result.label : "";
    root.dataset.probabilities = result ? JSON.stringify(result.probabilities) : "";
  }

  /** Classify the pad as it is now, through the same classify() as the API. */
  async classifyPad() {
    const version = this.drawn;
    const image = this.ctx.getImageData(0, 0, this.pad.width, this.pad.height);
    try {
      const pixels = preprocess(image.data, image.width, image.height);
      const result = await classify(image.data, image.width, image.height);
      const view = new ImageData(SIZE, SIZE);
      pixels.forEach((v, i) => view.data.set([v, v, v, 255], 4 * i));
      this.seen.getContext("2d").putImageData(view, 0, 0);
      this.show(result);
    } catch (error) {
      if (!(error instanceof ImageError)) throw error;
      this.show(null); // nothing drawn yet, or only specks
    }
    this.root.dataset.shown = String(version);
  }

  /** Classify, then again while the pad changed in the meantime: never a backlog. */
  async update() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.root.dataset.state = "busy";
    try {
      do {
        this.again = false;
        await this.classifyPad();
      } while (this.again);
      this.root.dataset.state = "idle";
    } catch (error) {
      this.fail(`Cannot classify: ${error.message}`);
    } finally {
      this.busy = false;
    }
  }

  /** At most one prediction per frame, however many pointer events come. */
  schedule() {
    if (this.frame || settings === null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.update();
    });
  }

  point(event) {
    const box = this.pad.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.pad.width) / box.width,
      ((event.clientY - box.top) * this.pad.height) / box.height,
    ];
  }

  stroke(from, to) {
    const ctx = this.ctx;
    const width = this.pad.width * 0.075; // about MNIST's stroke once the digit is 20 px tall
    ctx.beginPath();
    if (from[0] === to[0] && from[1] === to[1]) {
      ctx.fillStyle = "#fff"; // a dot: a zero-length line may draw nothing
      ctx.arc(...from, width / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = width;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.moveTo(...from);
      ctx.lineTo(...to);
      ctx.stroke();
    }
    this.touched();
    this.schedule();
  }

  listen() {
    const pad = this.pad;
    pad.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      pad.setPointerCapture(event.pointerId);
      this.last = this.point(event);
      this.stroke(this.last, this.last); // a tap leaves a dot
    });
    pad.addEventListener("pointermove", (event) => {
      if (this.last === null) return;
      // Fast strokes deliver several positions per event: draw through all of them.
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const each of events.length ? events : [event]) {
        const next = this.point(each);
        this.stroke(this.last, next);
        this.last = next;
      }
    });
    const lift = () => {
      if (this.last !== null) this.schedule();
      this.last = null;
    };
    pad.addEventListener("pointerup", lift);
    pad.addEventListener("pointercancel", lift);
    this.root.querySelector("[data-action=clear]").addEventListener("click", () => this.clear());
  }
}

document.querySelectorAll("#lenet5-demo").forEach((root) => new DrawingPad(root));
