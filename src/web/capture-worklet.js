// AudioWorklet processor: collects the microphone's mono samples at the AudioContext's own rate
// into frames of `frameSamples` and posts each to the page with its peak and RMS level.
// No resampling here: the page declares the context's rate in its start message and the server
// resamples. A 'flush' message posts whatever partial frame is left, then { flushed: true }.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = options.processorOptions.frameSamples;
    this.frame = new Float32Array(this.frameSamples);
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data !== 'flush') return;
      if (this.filled > 0) this.post(this.frame.slice(0, this.filled));
      this.filled = 0;
      this.port.postMessage({ flushed: true });
    };
  }

  post(samples) {
    let peak = 0;
    let sum = 0;
    for (const s of samples) {
      peak = Math.max(peak, Math.abs(s));
      sum += s * s;
    }
    const rms = samples.length > 0 ? Math.sqrt(sum / samples.length) : 0;
    this.port.postMessage({ samples, peak, rms }, [samples.buffer]);
  }

  process(inputs) {
    const channels = inputs[0];
    // No input connected (yet): nothing to capture, but keep the processor alive.
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      // Down-mix to mono if the device gave more than one channel.
      let sample = 0;
      for (const channel of channels) sample += channel[i];
      this.frame[this.filled++] = sample / channels.length;
      if (this.filled === this.frameSamples) {
        this.post(this.frame);
        this.frame = new Float32Array(this.frameSamples);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor('capture', CaptureProcessor);
