/** Messages between the pool and its workers. */
export type Task =
  | { id: number; op: "hashFile"; path: string }
  | { id: number; op: "hashBytes"; data: ArrayBuffer }
  | { id: number; op: "gzip"; data: ArrayBuffer; level: number };

export type TaskResult =
  | { id: number; ok: true; hex?: string; data?: ArrayBuffer }
  | { id: number; ok: false; error: string; code?: string };
