"use strict";

// The web console's boot: the page table, then the first route.

// ------------------------------------------------------------ not found

const NotFoundPage = {
  title: "Not found",
  skeleton: (ctx) => `<section class="card"><h2>No such page</h2>
    <p>Nothing lives at <code>#/${esc(ctx.route.arg)}</code>. <a href="#/">Back to the overview</a>.</p></section>`,
  load: async () => null,
  render() {},
};

// ------------------------------------------------------------ boot

const PAGES = {
  overview: OverviewPage, node: NodePage, cluster: ClusterPage, objects: ObjectsPage,
  object: ObjectPage, files: FilesPage, activity: ActivityPage, notfound: NotFoundPage,
};

window.addEventListener("hashchange", navigate);
window.addEventListener("resize", () => {
  if (current && current.onResize) current.onResize();
});
nodeId().catch(() => { /* the pages show their own errors */ });
navigate();
