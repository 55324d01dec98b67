// highlight.js types its package root and its languages, not the core entry the page imports.
declare module 'highlight.js/lib/core' {
  import hljs from 'highlight.js';
  export default hljs;
}
