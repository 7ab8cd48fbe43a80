import { FakeFleet, fleetInstance, instanceIdOf } from '../test/helpers/ec2-fleet';
import { Ec2PowerModel } from '../test/helpers/ec2-power';
import { startEc2QueryServer } from '../test/helpers/ec2-query-server';
import { startSsmServer } from '../test/helpers/ssm-server';

/**
 * Child process for bench/power.ts: the loopback EC2 (DescribeInstances paging, Start/StopInstances with
 * state transitions) and the loopback SSM over one on-demand fleet, so their CPU and heap are not the
 * pass's. Every instance is running, tagged dcv:auto-stop=30 and launched a day ago; its SSM answer is
 * the shipped script's line, precomputed (no shell per host): every 10th idle for two hours (stopped),
 * every 20th (offset 1) not a managed node (unknown), the rest with a client connected.
 * Sends { ec2, ssm, idle, unmanaged } to the parent, then serves until the parent goes away.
 */
const size = Number(process.argv[2]);
const now = Date.now();
const stamp = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.000000Z');
const line = (connections: number, left: string) =>
  `${JSON.stringify({ v: 1, sessions: [{ id: 'console', 'num-of-connections': connections, 'creation-time': stamp(now - 86_400_000), 'last-disconnection-time': left }], gpu: null, errors: [] })}\n`;
const IDLE = line(0, stamp(now - 7_200_000));
const CONNECTED = line(1, stamp(now - 7_200_000));

const fleet = new FakeFleet();
const power = new Ec2PowerModel(fleet, { stoppingMs: 60_000 });
const ssm = await startSsmServer();
let idle = 0;
let unmanaged = 0;
for (let n = 1; n <= size; n++) {
  fleet.put(fleetInstance(n, { launchTime: new Date(now - 86_400_000), tags: { 'dcv:session-id': `desk-${n}`, 'dcv:auto-stop': '30' } }));
  if (n % 20 === 1) {
    unmanaged++;
    ssm.ssm.hosts.set(instanceIdOf(n), { unmanaged: true });
  } else if (n % 10 === 0) {
    idle++;
    ssm.ssm.hosts.set(instanceIdOf(n), { stdout: IDLE });
  } else ssm.ssm.hosts.set(instanceIdOf(n), { stdout: CONNECTED });
}
const ec2 = await startEc2QueryServer(fleet, power);
process.send!({ ec2: ec2.endpoint, ssm: ssm.endpoint, idle, unmanaged });
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
