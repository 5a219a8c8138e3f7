// The model a notebook widget's ES module expects from anywidget (get, set, on, off,
// send, save_changes), held by the page instead of a kernel: the pages draw with the
// notebook's widget modules (served unchanged at /assets/widgets/) and feed them from
// the REST API and the stream.

export class WidgetModel {
  /** `state`: the widget's traits and their first values. */
  constructor(state) {
    this.state = { ...state };
    this.handlers = new Map();
  }

  get(name) {
    return this.state[name];
  }

  set(name, value) {
    if (this.state[name] === value) return;
    this.state[name] = value;
    this.emit(`change:${name}`);
  }

  save_changes() {
    // nothing to sync: the page is the model's only home
  }

  on(name, handler) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(handler);
  }

  off(name, handler) {
    this.handlers.get(name)?.delete(handler);
  }

  send(_message) {
    // a widget that asks its kernel for something overrides this
  }

  emit(name, payload) {
    for (const handler of this.handlers.get(name) || []) handler(payload);
  }

  /** Draw the widget `module` ({initialize?, render}) into `el`; returns a function that removes it. */
  mount(module, el) {
    const forget = module.initialize ? module.initialize({ model: this }) : null;
    const remove = module.render({ model: this, el });
    return () => {
      if (remove) remove();
      if (forget) forget();
    };
  }
}
