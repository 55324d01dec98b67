// The conversation survives a reload: turns are kept in sessionStorage (this tab only), and an
// answer that was still streaming is read again from its channel's history.

const KEY = 'relaychat:conversation:v1';
const MAX_TURNS = 200;

export function loadTurns() {
  try {
    const turns = JSON.parse(sessionStorage.getItem(KEY) || '[]');
    return Array.isArray(turns) ? turns : [];
  } catch {
    return [];
  }
}

export function saveTurns(turns) {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(turns.slice(-MAX_TURNS)));
  } catch {
    // storage full or disabled: the conversation just won't survive a reload
  }
}
