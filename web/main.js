// Loads the visualizer (compiled Rust, web/pkg) and starts it. All logic lives in the wasm.
import init, { startVisualizer } from './pkg/omnikv_viz.js';

const status = document.getElementById('connection');
try {
  await init();
  startVisualizer();
} catch (e) {
  status.textContent = `The visualizer failed to start: ${e}. Run scripts/build-web.`;
  status.dataset.state = 'problem';
  throw e;
}
