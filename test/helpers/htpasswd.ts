// bcrypt htpasswd lines from apache2-utils' `htpasswd`, the format docker-registry reads.
import { runTool } from './run-tool.js';

export async function htpasswdLine(user: string, password: string): Promise<string> {
  // -i reads the password from stdin so it never appears in a process listing.
  const { stdout } = await runTool('htpasswd', ['-niB', '-C', '5', user], { input: `${password}\n` });
  const line = stdout.trim();
  if (!line.startsWith(`${user}:$2`)) throw new Error('htpasswd did not produce a bcrypt line');
  return line;
}
