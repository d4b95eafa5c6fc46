/** A labelled text input whose value the page holds (the label wraps it, so it names it). */
export function Field({
  label,
  name,
  value,
  onValue,
  password = false,
  tel = false,
  autocomplete,
  required = false,
}: {
  label: string;
  name: string;
  value: string;
  onValue: (value: string) => void;
  password?: boolean;
  tel?: boolean;
  autocomplete?: string;
  required?: boolean;
}) {
  const common = {
    name,
    autocomplete,
    required,
    value,
    onInput: (event: { currentTarget: HTMLInputElement }) => onValue(event.currentTarget.value),
  };
  return (
    <label>
      {label}
      {password ? (
        <input type="password" {...common} />
      ) : tel ? (
        <input type="tel" {...common} />
      ) : (
        <input {...common} />
      )}
    </label>
  );
}
