// Optional audible alarm signal (off by default; the browser allows sound only
// after a click, which the "Sound" switch is). Patterns after IEC 60601-1-8:
// high priority a burst of 10 pulses repeated every 5 s, medium 3 pulses
// every 15 s, low no sound. Only unacknowledged alarms sound.

const PATTERN = {
	high: { pulses: [0, 0.25, 0.5, 1.0, 1.25, 2.0, 2.25, 2.5, 3.0, 3.25], hz: 880, every: 5000 },
	medium: { pulses: [0, 0.4, 0.8], hz: 660, every: 15000 },
};

export class Tone {
	constructor() {
		this.ctx = null;
		this.on = false;
		this.lastAt = { high: 0, medium: 0 };
	}

	enable(on) {
		this.on = on;
		if (on && !this.ctx && typeof AudioContext !== 'undefined') this.ctx = new AudioContext();
		if (this.ctx && on && this.ctx.state === 'suspended') this.ctx.resume();
	}

	// Called a few times a second with the highest unacknowledged priority
	// present ('high', 'medium' or null).
	update(priority, now) {
		if (!this.on || !this.ctx || !priority || !PATTERN[priority]) return;
		const p = PATTERN[priority];
		if (now - this.lastAt[priority] < p.every) return;
		this.lastAt[priority] = now;
		const t0 = this.ctx.currentTime + 0.05;
		for (const dt of p.pulses) this.beep(t0 + dt, p.hz);
	}

	beep(at, hz) {
		const osc = this.ctx.createOscillator();
		const gain = this.ctx.createGain();
		osc.frequency.value = hz;
		gain.gain.setValueAtTime(0, at);
		gain.gain.linearRampToValueAtTime(0.25, at + 0.02);
		gain.gain.setValueAtTime(0.25, at + 0.14);
		gain.gain.linearRampToValueAtTime(0, at + 0.16);
		osc.connect(gain).connect(this.ctx.destination);
		osc.start(at);
		osc.stop(at + 0.2);
	}
}
