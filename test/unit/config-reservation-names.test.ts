import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';

describe('config: reservation names on the deny list (issue 12, row 6)', () => {
  it('refuses them at load time, naming the field', () => {
    const reservations = [
      { mac: '52:54:00:00:00:01', address: '10.77.0.5', hostname: 'db' },
      { mac: '52:54:00:00:00:02', address: '10.77.0.6', hostname: 'WPAD' },
      { mac: '52:54:00:00:00:03', address: '10.77.0.7', hostname: 'com' },
    ];
    expect(() => resolveConfig({ bridge: 'br0', reservations })).toThrow(/reservations\.1\.hostname: "WPAD" is a special-use name[\s\S]*reservations\.2\.hostname: "com" is a top-level domain/);
    expect(resolveConfig({ bridge: 'br0', reservations: reservations.slice(0, 1) }).reservations[0]?.hostname).toBe('db');
  });
});
