/**
 * The password prompt of an encrypted repository on a terminal: no echo (raw mode), Backspace
 * and Ctrl-U edit, Enter ends, Ctrl-C interrupts the command as it would anywhere else.
 */
import { BackupError } from '../errors.js';
import { PASSWORD_ENV } from './crypto.js';

/** The terminal side of a prompt: a TTY input (raw mode) and where the question is written. */
export interface PromptTerminal {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(mode: boolean): unknown };
  output: { write(text: string): unknown };
}

/** Read one line from the terminal without echoing it. `undefined` on Ctrl-D at an empty line. */
export function readHidden(term: PromptTerminal, question: string): Promise<string | undefined> {
  const { input, output } = term;
  return new Promise((resolve) => {
    let line = '';
    const finish = (value: string | undefined) => {
      input.removeListener('data', onData);
      input.setRawMode?.(false);
      input.pause();
      output.write('\n');
      resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish(line);
        if (ch === '\u0003') {
          // Ctrl-C: leave the terminal as it was, then be interrupted like any command.
          finish(undefined);
          process.kill(process.pid, 'SIGINT');
          return;
        }
        if (ch === '\u0004') {
          if (line === '') return finish(undefined);
          continue;
        }
        if (ch === '\u007f' || ch === '\b') line = [...line].slice(0, -1).join('');
        else if (ch === '\u0015') line = '';
        else if (ch >= ' ') line += ch;
      }
    };
    input.setRawMode?.(true); // before the question: nothing typed after it is ever echoed
    output.write(question);
    input.on('data', onData);
    input.resume();
  });
}

/**
 * Ask for the password of `url` on the terminal; with `confirm` (a new encrypted repository)
 * twice, and both must match.
 *
 * @throws {BackupError} `WRONG_PASSWORD` when nothing was typed, or the two differ.
 */
export async function askPassword(term: PromptTerminal, url: string, confirm: boolean): Promise<string> {
  const first = await readHidden(term, confirm ? `New password for the encrypted repository ${url}: ` : `Password of the repository ${url}: `);
  if (first === undefined || first === '') throw new BackupError('WRONG_PASSWORD', `No password was typed for ${url}: nothing was read or written.`, { path: url });
  if (!confirm) return first;
  const again = await readHidden(term, 'Type it again: ');
  if (again !== first) throw new BackupError('WRONG_PASSWORD', `The two passwords typed for ${url} differ: no repository was created. Run the command again.`, { path: url });
  return first;
}

/**
 * The password source of a CLI run: a prompt on the terminal (asked at most once per command,
 * however often the repository is opened), or `undefined` when stdin is not a TTY (then
 * `${PASSWORD_ENV}` or `--password-file` is needed).
 */
export function terminalPassword(term: PromptTerminal): ((req: { url: string; confirm: boolean }) => Promise<string>) | undefined {
  if (term.input.isTTY !== true || typeof term.input.setRawMode !== 'function') return undefined;
  let answer: Promise<string> | undefined;
  return (req) => (answer ??= askPassword(term, req.url, req.confirm));
}
