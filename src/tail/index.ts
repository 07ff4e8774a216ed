/** `clogs tail`, `clogs ps`, `clogs search`: reading back what clogs collected. */
export { registerTailCommands } from './command.js';
