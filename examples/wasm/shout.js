// A wasi:http handler in the Fetch API style: GET /shout/{word} answers the
// word in capitals. console.log lines go to the invocation's log.
addEventListener('fetch', (event) => event.respondWith(shout(event.request)));

async function shout(request) {
  const url = new URL(request.url);
  const word = decodeURIComponent(url.pathname.split('/').pop() || 'hello');
  console.log(`shouting ${word}`);
  return new Response(`${word.toUpperCase()}!\n`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}
