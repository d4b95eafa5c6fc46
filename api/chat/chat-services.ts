import { AgentDesk, type AgentDeskDeps } from './agent-desk.js';
import { Conversation, type ConversationDeps } from './conversation.js';
import { CustomerChat, type CustomerChatDeps } from './customer-chat.js';

/**
 * Web chat in the API: the customer's session and intake (api/chat/customer-chat.ts), the agent's
 * desk (api/chat/agent-desk.ts), and the event log both write (api/chat/conversation.ts), built
 * together over one set of connections. The routes and the sockets get the three from here.
 */

export type ChatDeps = CustomerChatDeps & AgentDeskDeps & ConversationDeps;

export interface ChatServices {
  customers: CustomerChat;
  desk: AgentDesk;
  conversation: Conversation;
}

export function createChatServices(deps: ChatDeps): ChatServices {
  const conversation = new Conversation(deps);
  return {
    customers: new CustomerChat(deps),
    desk: new AgentDesk(deps, conversation),
    conversation,
  };
}
