import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFilter, detectOwnContainerIds, globToRegExp, imageWithoutTag, type FilterSubject } from '../../../src/collector/docker/filters.js';
import { buildMeta, containerInfo, type InspectAnswer } from '../../../src/collector/docker/metadata.js';
import { dockerSchema } from '../../../src/config/schema.js';
import inspectFixture from '../../fixtures/docker/events/container-inspect.json' with { type: 'json' };

const ID = '0ec64f8cbc0382482a42b64e809c07265559bdf2b245b7f42ba9d72f91dc62be';
const subject = (over: Partial<FilterSubject> = {}): FilterSubject => ({ id: ID, name: 'web-1', image: 'nginx:1.25', labels: {}, ...over });
const filter = (cfg: object, own: string[] = []) => compileFilter(dockerSchema.parse(cfg), own);

describe('container filters', () => {
  it('follows everything by default except the opt-out label', () => {
    const f = filter({});
    expect(f(subject())).toBeUndefined();
    expect(f(subject({ labels: { 'clogs.enable': 'false' } }))).toBe('opt-out');
    expect(f(subject({ labels: { 'clogs.enable': 'true' } }))).toBeUndefined();
  });

  it('takes a bare key as the opt-out label too', () => {
    expect(filter({ opt_out_label: 'no-logs' })(subject({ labels: { 'no-logs': '' } }))).toBe('opt-out');
  });

  it('includes by name glob, label key or key=value, or image (any tag)', () => {
    const f = filter({ include: { names: ['web-*'], labels: ['team=core', 'monitored'], images: ['redis'] } });
    expect(f(subject())).toBeUndefined();
    expect(f(subject({ name: 'db-1', image: 'postgres:16' }))).toBe('not-included');
    expect(f(subject({ name: 'db-1', image: 'postgres:16', labels: { team: 'core' } }))).toBeUndefined();
    expect(f(subject({ name: 'db-1', image: 'postgres:16', labels: { team: 'edge' } }))).toBe('not-included');
    expect(f(subject({ name: 'db-1', image: 'postgres:16', labels: { monitored: 'x' } }))).toBeUndefined();
    expect(f(subject({ name: 'db-1', image: 'redis:7.2' }))).toBeUndefined();
    expect(f(subject({ name: 'db-1', image: 'redis@sha256:abc' }))).toBeUndefined();
  });

  it('excludes before including', () => {
    const f = filter({ include: { names: ['*'] }, exclude: { names: ['*-debug'], images: ['busybox*'], labels: ['skip'] } });
    expect(f(subject({ name: 'web-debug' }))).toBe('excluded');
    expect(f(subject({ image: 'busybox:latest' }))).toBe('excluded');
    expect(f(subject({ labels: { skip: '1' } }))).toBe('excluded');
    expect(f(subject())).toBeUndefined();
  });

  it('never follows its own container (full id or the hostname prefix)', () => {
    expect(filter({}, [ID])(subject())).toBe('self');
    expect(filter({}, [ID.slice(0, 12)])(subject())).toBe('self');
    expect(filter({}, ['ffffffffffff'])(subject())).toBeUndefined();
  });

  it('globs match whole strings, with regex characters taken literally', () => {
    expect(globToRegExp('a.b*').test('a.bc')).toBe(true);
    expect(globToRegExp('a.b*').test('axbc')).toBe(false);
    expect(globToRegExp('web-?').test('web-12')).toBe(false);
    expect(imageWithoutTag('registry:5000/team/app:1.0')).toBe('registry:5000/team/app');
    expect(imageWithoutTag('registry:5000/team/app')).toBe('registry:5000/team/app');
  });
});

describe('own container detection', () => {
  const proc = (cgroup: string, mountinfo: string) => {
    const d = mkdtempSync(join(tmpdir(), 'clogs-proc-'));
    writeFileSync(join(d, 'cgroup'), cgroup);
    writeFileSync(join(d, 'mountinfo'), mountinfo);
    return d;
  };

  it('reads the id from the cgroup path (v1) and from the /etc/hostname mount (v2)', async () => {
    const v1 = proc(`12:memory:/docker/${ID}\n0::/docker/${ID}\n`, '');
    const v2 = proc('0::/\n', `812 790 254:1 /var/lib/docker/containers/${ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n`);
    try {
      expect(await detectOwnContainerIds(v1, 'myhost')).toEqual([ID]);
      expect(await detectOwnContainerIds(v2, 'myhost')).toEqual([ID]);
      expect(await detectOwnContainerIds(v2, ID.slice(0, 12))).toEqual([ID, ID.slice(0, 12)]);
    } finally {
      rmSync(v1, { recursive: true });
      rmSync(v2, { recursive: true });
    }
  });

  it('finds nothing on a host', async () => {
    const host = proc('0::/user.slice/user-1000.slice/session-1.scope\n', '22 1 254:1 / / rw - ext4 /dev/vda rw\n');
    try {
      expect(await detectOwnContainerIds(host, 'build-box')).toEqual([]);
    } finally {
      rmSync(host, { recursive: true });
    }
  });
});

describe('container metadata from inspect', () => {
  it('builds ContainerMeta from the captured inspect answer', () => {
    const info = containerInfo(inspectFixture as unknown as InspectAnswer);
    expect(info).toMatchObject({ id: ID, name: 'clogs-cap-ev-renamed', image: 'clogs-busybox:latest', tty: false, logDriver: 'json-file', running: true });
    expect(info.meta).toEqual({
      id: ID,
      name: 'clogs-cap-ev-renamed',
      image: { name: 'clogs-busybox:latest' },
      labels: { 'com.example.team': 'clogs', name: 'label-called-name' },
    });
    expect(Object.isFrozen(info.meta)).toBe(true);
    expect(Object.isFrozen(info.meta.labels)).toBe(true);
  });

  it('keeps one meta object per container until its name changes', () => {
    const a = containerInfo(inspectFixture as unknown as InspectAnswer);
    const b = containerInfo(inspectFixture as unknown as InspectAnswer, a);
    expect(b.meta).toBe(a.meta);
    const renamed = containerInfo({ ...(inspectFixture as unknown as InspectAnswer), Name: '/new-name' }, a);
    expect(renamed.meta).not.toBe(a.meta);
    expect(renamed.meta.name).toBe('new-name');
  });

  it('maps the compose labels', () => {
    expect(buildMeta('x', 'proj-web-1', 'img', { 'com.docker.compose.project': 'proj', 'com.docker.compose.service': 'web' }).compose).toEqual({ project: 'proj', service: 'web' });
    expect(buildMeta('x', 'n', '', {})).toEqual({ id: 'x', name: 'n' });
  });
});
