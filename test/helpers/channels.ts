import diagnostics from 'node:diagnostics_channel'
import type { ChannelMessages, ChannelName } from '../../lib/channels.js'

/** Records every message of the given drainpipe channels until `stop()`. */
export function record<N extends ChannelName>(...names: N[]) {
  const messages: { name: N; message: ChannelMessages[N] }[] = []
  const waiters: { name: N; predicate: (m: ChannelMessages[N]) => boolean; resolve: (m: ChannelMessages[N]) => void }[] = []
  const listeners = names.map((name) => {
    const listener = (message: unknown) => {
      messages.push({ name, message: message as ChannelMessages[N] })
      for (const waiter of [...waiters]) {
        if (waiter.name === name && waiter.predicate(message as ChannelMessages[N])) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(message as ChannelMessages[N])
        }
      }
    }
    diagnostics.subscribe(name, listener)
    return [name, listener] as const
  })
  return {
    messages,
    of<M extends N>(name: M): ChannelMessages[M][] {
      return messages.filter((entry) => entry.name === name).map((entry) => entry.message as ChannelMessages[M])
    },
    /** Resolves with the next message from now on matching the predicate: call it before the action. */
    next<M extends N>(name: M, predicate: (m: ChannelMessages[M]) => boolean = () => true): Promise<ChannelMessages[M]> {
      return new Promise((resolve) =>
        waiters.push({ name, predicate: predicate as never, resolve: resolve as never }),
      )
    },
    stop() {
      for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener)
    },
  }
}
